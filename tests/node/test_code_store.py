"""Uploaded zips on the real node (ADR 025): stored by the code store on its volume, fetched and
checked by each pod's init container, read-only at /var/task, kept across a store restart, and
swept once no Function names them.

boto3 deploys through the cluster gateway as a CI pipeline would (CreateFunction with ZipFile,
UpdateFunctionCode, DeleteFunction); the store's volume is the static hostPath volume conftest.py
binds (the node has no provisioner), its garbage collector runs every few seconds with a short
grace (code_store_volume.py).
"""

from __future__ import annotations

import base64
import functools
import json
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from codestore.zips import make_zip
from waiting import eventually

from kfaas import code_capabilities
from kfaas.code_digests import CodeDigest
from node.code_store_volume import GC_GRACE_SECONDS, GC_INTERVAL_SECONDS
from node.kfaas_release import PLATFORM_NAMESPACE, RELEASE, Release

ROLE = "arn:aws:iam::e2e:role/default"
HANDLER = """\
import os

VERSION = {version!r}

def handler(event, context):
    root = os.environ["LAMBDA_TASK_ROOT"]
    try:
        open(os.path.join(root, "written"), "w").close()
        task = "writable"
    except OSError as error:
        task = "read-only" if error.errno == 30 else str(error)
    return {{"version": VERSION, "task": task, "files": sorted(os.listdir(root)),
             "capability": "KFAAS_CODE_CAPABILITY" in os.environ}}
"""


@functools.cache  # the same bytes each time: zipfile stamps entries with the clock
def _zip(version: str) -> bytes:
    return make_zip(
        [("app.py", HANDLER.format(version=version)), ("lib/data.txt", "shipped in the zip\n")]
    )


def _invoke(release: Release, name: str) -> dict[str, Any]:
    answer = release.lambda_client(read_timeout=100).invoke(
        FunctionName=release.qualified(name), Payload=b"{}"
    )
    assert "FunctionError" not in answer, answer["Payload"].read()
    body: dict[str, Any] = json.loads(answer["Payload"].read())
    return body


def _store_has(release: Release, digest: CodeDigest) -> bool:
    """HEAD of the blob on the store's Service, with the gateways' write token."""
    secret = release.kubectl.json(
        "-n", PLATFORM_NAMESPACE, "get", "secret", f"{RELEASE}-code-store-key"
    )
    token = code_capabilities.write_token(base64.b64decode(secret["data"]["key"]).decode())
    url = f"{release.service_url(f'{RELEASE}-code-store')}/v1/blobs/sha256/{digest.hex}"
    request = urllib.request.Request(
        url, method="HEAD", headers={"Authorization": f"Bearer {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return bool(answer.status == 200)
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return False
        raise


@pytest.fixture(scope="module")
def zip_function(release: Release) -> str:
    release.allow_deploys()
    name = f"zip-{uuid.uuid4().hex[:8]}"
    release.lambda_client().create_function(
        FunctionName=release.qualified(name),
        Role=ROLE,
        Runtime="python3.11",
        Handler="app.handler",
        Code={"ZipFile": _zip("one")},
    )
    release.wait_ready(name, timeout=110)
    return name


def test_a_zip_uploaded_through_the_api_runs_read_only_from_var_task(
    release: Release, zip_function: str
) -> None:
    body = _invoke(release, zip_function)
    assert body == {
        "version": "one",
        "task": "read-only",
        "files": ["app.py", "lib"],
        "capability": False,  # only the init container saw it
    }
    (pod,) = release.running_pods(zip_function)
    (fetch,) = pod["status"]["initContainerStatuses"]
    assert fetch["name"] == "fetch-code"
    assert fetch["state"]["terminated"]["exitCode"] == 0
    assert _store_has(release, CodeDigest.of(_zip("one")))


def test_update_function_code_rolls_the_pods_onto_the_new_zip(
    release: Release, zip_function: str
) -> None:
    client = release.lambda_client()
    client.update_function_code(FunctionName=release.qualified(zip_function), ZipFile=_zip("two"))
    eventually(
        lambda: _invoke(release, zip_function)["version"] == "two",
        within=100, interval=1, what="the new zip answers",
    )  # fmt: skip


def test_the_store_keeps_zips_across_its_restart(release: Release, zip_function: str) -> None:
    release.kubectl("-n", PLATFORM_NAMESPACE, "delete", "pod", f"{RELEASE}-code-store-0")
    release.kubectl(
        "-n", PLATFORM_NAMESPACE, "rollout", "status", f"statefulset/{RELEASE}-code-store",
        "--timeout=60s",
    )  # fmt: skip
    # A new instance must fetch its zip from the restarted store.
    release.kubectl(
        "-n", release.namespace, "delete", "pods", "-l", f"kfaas.dev/function={zip_function}"
    )
    assert _invoke(release, zip_function)["version"] == "two"


def test_deleted_functions_zips_are_swept(release: Release, zip_function: str) -> None:
    digests = [CodeDigest.of(_zip("one")), CodeDigest.of(_zip("two"))]
    release.lambda_client().delete_function(FunctionName=release.qualified(zip_function))
    eventually(
        lambda: not any(_store_has(release, digest) for digest in digests),
        within=GC_GRACE_SECONDS + 6 * GC_INTERVAL_SECONDS + 30, interval=2,
        what="the store's garbage collector deletes both zips",
    )  # fmt: skip
