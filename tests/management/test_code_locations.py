"""GetFunction's Code.Location opens on every gateway replica that shares the key (ADR 025).

A cluster runs 2 to 10 gateways behind one Service, so the download may reach another replica than
the one that signed it: replicas sign with the code store's key, and code that is not in the code
store (inline) is rebuilt from the function the URL names — only if it still has the signed digest.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from management_gateway import ManagementGateway, apply_function, management_gateway_on

from kfaas.code_capabilities import new_key
from kfaas.gateway import function_code

KEY = new_key()
ONE = {"app.py": "def handler(event, context):\n    return 1\n"}
TWO = {"app.py": "def handler(event, context):\n    return 2\n"}


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[ManagementGateway, ManagementGateway]]:
    # Two folders stand for one cluster's objects as two replicas read them.
    with (
        management_gateway_on(tmp_path / "a", location_key=KEY) as first,
        management_gateway_on(tmp_path / "b", location_key=KEY) as second,
    ):
        yield first, second


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.read()


def on(gateway: ManagementGateway, location: str) -> str:
    """The same URL sent to another replica."""
    parts = urllib.parse.urlsplit(location)
    return urllib.parse.urlunsplit(parts._replace(netloc=urllib.parse.urlsplit(gateway.url).netloc))


def test_a_location_signed_by_one_replica_downloads_from_another(
    replicas: tuple[ManagementGateway, ManagementGateway],
) -> None:
    first, second = replicas
    for gateway in replicas:
        apply_function(gateway, code={"inline": ONE})
    location = first.client.get_function(FunctionName="resize")["Code"]["Location"]
    expected = fetch(location)
    assert expected[0] == 200
    function_code._recent.clear()  # the other replica's process never built this zip
    assert fetch(on(second, location)) == expected


def test_a_replica_rebuilds_only_the_signed_digest(
    replicas: tuple[ManagementGateway, ManagementGateway],
) -> None:
    first, second = replicas
    apply_function(first, code={"inline": ONE})
    apply_function(second, code={"inline": TWO})  # the function changed meanwhile
    location = first.client.get_function(FunctionName="resize")["Code"]["Location"]
    function_code._recent.clear()
    status, _ = fetch(on(second, location))
    assert status == 404


def test_a_location_signed_with_another_key_is_refused(
    replicas: tuple[ManagementGateway, ManagementGateway], tmp_path: Path
) -> None:
    first, _ = replicas
    apply_function(first, code={"inline": ONE})
    with management_gateway_on(tmp_path / "other") as stranger:  # a key of its own
        apply_function(stranger, code={"inline": ONE})
        location = stranger.client.get_function(FunctionName="resize")["Code"]["Location"]
        assert fetch(location)[0] == 200
    status, body = fetch(on(first, location))
    assert status == 403 and b"signature" in body


def test_a_hostile_function_name_in_a_location_is_a_404_not_a_fault(
    replicas: tuple[ManagementGateway, ManagementGateway],
) -> None:
    first, _ = replicas
    apply_function(first, code={"inline": ONE})
    location = first.client.get_function(FunctionName="resize")["Code"]["Location"]
    parts = urllib.parse.urlsplit(location)
    query = dict(urllib.parse.parse_qsl(parts.query))
    for source in ("default/resize\r\nX-Injected: 1", "../../etc", "other/resize:$LATEST", "\0"):
        function_code._recent.clear()
        hostile = urllib.parse.urlencode(query | {"Function": source})
        status, _ = fetch(urllib.parse.urlunsplit(parts._replace(query=hostile)))
        assert status == 404, source
