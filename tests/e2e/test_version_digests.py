"""A version's CodeSha256 through a real `kfaas dev`, judged by boto3 (ADR 031).

What PublishVersion answers is what every later read of the version answers, and it is the
base64 sha256 of the code (for an uploaded zip, of the zip's own bytes, as the AWS CLI's users
compare it). A FunctionVersion whose stored file was edited by hand to another `codeSha256` than
its template's code's is never run: kfaas dev starts, serves the others, and the version reads as
Failed with both digests in its StateReason, as the operator writes it in a cluster.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from botocore.exceptions import ClientError
from devserver import dev_server, make_lambda_client
from version_digests import code_sha256
from waiting import eventually

from kfaas import object_store as store
from kfaas.dir_store import DirectoryObjectStore

HANDLER = "def handler(event, context):\n    return {'code': CODE}\n"
TEMPLATE: dict[str, Any] = {
    "runtime": "python3.11",
    "handler": "app.handler",
    "code": {"inline": {"app.py": "CODE = 'one'\n" + HANDLER}},
}
WRONG = base64.b64encode(hashlib.sha256(b"other code").digest()).decode()


def write_objects(state: Path) -> None:
    """Function `digest` and its versions 1 and 2, written as PublishVersion would have."""

    async def write() -> None:
        objects = DirectoryObjectStore.open(state)
        try:
            function = {"metadata": {"name": "digest", "namespace": "default"}, "spec": TEMPLATE}
            await objects.create(store.FUNCTIONS, function, field_manager="test")
            for number in (1, 2):
                body = {
                    "metadata": {"name": f"digest.{number}", "namespace": "default"},
                    "spec": {"functionName": "digest", "version": number,
                             "codeSha256": code_sha256(TEMPLATE),
                             "configSha256": f"{number:064x}", "template": TEMPLATE},
                }  # fmt: skip
                await objects.create(store.FUNCTION_VERSIONS, body, field_manager="test")
        finally:
            objects.close()

    asyncio.run(write())
    # Version 2's file edited by hand: its digest no longer names its code.
    path = state / "objects" / store.FUNCTION_VERSIONS / "default" / "digest.2.yaml"
    edited = yaml.safe_load(path.read_text())
    edited["spec"]["codeSha256"] = WRONG
    path.write_text(yaml.safe_dump(edited))


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    folder = tmp_path_factory.mktemp("digests")
    (folder / "manifests").mkdir()
    write_objects(folder / "state")
    with dev_server([folder / "manifests"], args=["--state", str(folder / "state")]) as server:
        yield make_lambda_client(server.url)


def handler_zip(code: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", f"CODE = {code!r}\n" + HANDLER)
    return buffer.getvalue()


def test_a_published_version_reads_back_the_code_sha256_it_was_published_with(
    client: Any,
) -> None:
    package = handler_zip("two")
    expected = base64.b64encode(hashlib.sha256(package).digest()).decode()
    updated = client.update_function_code(FunctionName="digest", ZipFile=package)
    assert updated["CodeSha256"] == expected
    client.get_waiter("function_updated_v2").wait(FunctionName="digest")
    published = client.publish_version(FunctionName="digest", CodeSha256=expected)
    number = published["Version"]
    assert published["CodeSha256"] == expected
    client.get_waiter("published_version_active").wait(FunctionName="digest", Qualifier=number)
    read = client.get_function_configuration(FunctionName="digest", Qualifier=number)
    assert read["CodeSha256"] == expected
    got = client.get_function(FunctionName="digest", Qualifier=number)["Configuration"]
    assert got["CodeSha256"] == expected
    listed = client.list_versions_by_function(FunctionName="digest")["Versions"]
    assert {v["Version"]: v["CodeSha256"] for v in listed}[number] == expected
    answer = client.invoke(FunctionName="digest", Qualifier=number, Payload=b"{}")
    assert answer["Payload"].read() == b'{"code": "two"}'


def test_a_version_applied_with_its_code_s_digest_runs(client: Any) -> None:
    read = client.get_function_configuration(FunctionName="digest", Qualifier="1")
    assert read["CodeSha256"] == code_sha256(TEMPLATE)
    client.get_waiter("published_version_active").wait(FunctionName="digest", Qualifier="1")
    answer = client.invoke(FunctionName="digest", Qualifier="1", Payload=b"{}")
    assert answer["Payload"].read() == b'{"code": "one"}'


def test_a_version_edited_to_another_digest_is_failed_and_never_runs(client: Any) -> None:
    def failed() -> dict[str, Any] | None:
        read: dict[str, Any] = client.get_function_configuration(
            FunctionName="digest", Qualifier="2"
        )
        return read if read["State"] == "Failed" else None

    read = eventually(failed, within=30, what="version 2 Failed")
    assert read["CodeSha256"] == WRONG  # what the object states, beside why it is not served
    assert read["StateReasonCode"] == "InvalidConfiguration"
    assert repr(WRONG) in read["StateReason"]
    assert repr(code_sha256(TEMPLATE)) in read["StateReason"]
    with pytest.raises(ClientError) as refused:
        client.invoke(FunctionName="digest", Qualifier="2", Payload=b"{}")
    assert refused.value.response["Error"]["Code"] == "ResourceNotFoundException"
