"""GetFunction and ListFunctions answer with real facts, as boto3 reads them (issue 11, ADR 024).

LastModified is when the function last changed, not the time of the request; CodeSha256 is that of
the code's canonical zip; RevisionId changes when the function does; ListFunctions pages with
MaxItems and NextMarker, and refuses a marker it did not make.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from devserver import DevServer, dev_server, make_lambda_client
from waiting import eventually

from kfaas.lambda_code import canonical_zip

NAMES = ["alpha", "bravo", "charlie", "delta", "echo"]
LAMBDA_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}\+0000$")


def manifest(code: str, label: str) -> str:
    return "".join(
        f"""---
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {{name: {name}}}
spec:
  runtime: python3.11
  handler: app.handler
  environment: {{LABEL: {label}}}
  code:
    inline:
      app.py: {json.dumps(code)}
"""
        for name in NAMES
    )


CODE = "def handler(event, context):\n    return 1\n"


def sha256_of_zip(code: str) -> tuple[str, int]:
    package = canonical_zip({"app.py": code.encode()})
    return base64.b64encode(hashlib.sha256(package).digest()).decode(), len(package)


@pytest.fixture
def project(tmp_path: Path) -> Iterator[tuple[Path, DevServer, Any]]:
    (tmp_path / "functions.yaml").write_text(manifest(CODE, "first"))
    with dev_server([tmp_path]) as dev:
        yield tmp_path / "functions.yaml", dev, make_lambda_client(dev.url)


def test_get_function_reports_real_facts(project: tuple[Path, DevServer, Any]) -> None:
    path, _, client = project
    before = datetime.datetime.now(datetime.UTC)
    first = client.get_function(FunctionName="alpha")["Configuration"]
    assert LAMBDA_TIME.match(first["LastModified"]), first["LastModified"]
    # What a request at a later time sees is the same: LastModified is not the request's time.
    time.sleep(1.1)
    again = client.get_function_configuration(FunctionName="alpha")
    assert again["LastModified"] == first["LastModified"]
    assert again["RevisionId"] == first["RevisionId"]
    modified = datetime.datetime.strptime(first["LastModified"], "%Y-%m-%dT%H:%M:%S.%f%z")
    assert modified <= before
    assert (first["CodeSha256"], first["CodeSize"]) == sha256_of_zip(CODE)
    assert re.fullmatch(r"[0-9a-f-]{36}", first["RevisionId"])

    # A manifest change: a new RevisionId and LastModified, the same code.
    path.write_text(manifest(CODE, "second"))

    def relabelled() -> dict[str, Any] | None:
        configuration: dict[str, Any] = client.get_function_configuration(FunctionName="alpha")
        return (
            configuration
            if configuration["Environment"]["Variables"]["LABEL"] == "second"
            else None
        )

    second = eventually(relabelled, within=20, what="the new label served")
    assert second["RevisionId"] != first["RevisionId"]
    assert second["LastModified"] > first["LastModified"]
    assert second["CodeSha256"] == first["CodeSha256"]

    # A code change: a new CodeSha256 and RevisionId.
    code = CODE.replace("1", "2")
    path.write_text(manifest(code, "second"))

    def recoded() -> dict[str, Any] | None:
        configuration: dict[str, Any] = client.get_function_configuration(FunctionName="alpha")
        return configuration if configuration["RevisionId"] != second["RevisionId"] else None

    third = eventually(recoded, within=20, what="the new code described")
    assert (third["CodeSha256"], third["CodeSize"]) == sha256_of_zip(code)


def test_list_functions_pages_with_max_items_and_next_marker(
    project: tuple[Path, DevServer, Any],
) -> None:
    _, _, client = project
    seen: list[str] = []
    pages = 0
    marker: dict[str, str] = {}
    while True:
        page = client.list_functions(MaxItems=2, **marker)
        pages += 1
        assert len(page["Functions"]) <= 2
        seen += [f["FunctionName"] for f in page["Functions"]]
        if "NextMarker" not in page:
            break
        marker = {"Marker": page["NextMarker"]}
    assert (seen, pages) == (NAMES, 3)

    paginator = client.get_paginator("list_functions")
    pages_seen = list(paginator.paginate(PaginationConfig={"PageSize": 2}))
    assert [len(p["Functions"]) for p in pages_seen] == [2, 2, 1]
    listed = [f["FunctionName"] for p in pages_seen for f in p["Functions"]]
    assert listed == NAMES
    assert [f["FunctionName"] for f in client.list_functions()["Functions"]] == NAMES


@pytest.mark.parametrize("marker", ["garbled", "e30.AAAA", "x" * 3000])
def test_a_marker_it_did_not_make_is_refused(
    project: tuple[Path, DevServer, Any], marker: str
) -> None:
    _, _, client = project
    with pytest.raises(ClientError) as refused:
        client.list_functions(Marker=marker)
    error = refused.value.response["Error"]
    assert error["Code"] == "InvalidParameterValueException"
    assert "Marker" in error["Message"]
    with pytest.raises(ClientError) as too_many:
        client.list_functions(MaxItems=10001)
    assert too_many.value.response["Error"]["Code"] == "InvalidParameterValueException"
