"""Published versions and aliases invoked through a real `kfaas dev`, judged by boto3 (ADR 024).

The objects are written into the state folder's store before `kfaas dev` starts, as the
management API or `kubectl apply` would have written them: function `canary` and its versions 1
and 2, whose handlers answer which version they are (their own code, and the
`AWS_LAMBDA_FUNCTION_VERSION` each instance gets), an alias `live` on 1 with 10 % on 2 and an
alias `head` on `$LATEST`. Each version runs on instances of its own.
"""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import redis
from botocore.exceptions import ClientError
from devserver import DevServer, dev_server, make_lambda_client
from services.redis_server import RedisServer
from version_digests import code_sha256
from waiting import eventually

from kfaas import object_store as store
from kfaas.dir_store import DirectoryObjectStore

HANDLER = """\
import json, os

CODE = {code!r}

def handler(event, context):
    # An async test names its event; a mapping's batch (SQS-shaped Records) is "mapping".
    named = event.get("record") or ("mapping" if event.get("Records") else None)
    if named:
        with open(os.environ["RECORD_FILE"], "a") as record:
            record.write(json.dumps({{"code": CODE, "id": named}}) + "\\n")
    return {{
        "code": CODE,
        "version": context.function_version,
        "arn": context.invoked_function_arn,
    }}
"""
INVOCATIONS = 2000
WEIGHT = 0.1


def spec(code: str, record: Path) -> dict[str, Any]:
    return {
        "runtime": "python3.11",
        "handler": "app.handler",
        "code": {"inline": {"app.py": HANDLER.format(code=code)}},
        "environment": {"RECORD_FILE": str(record)},
        "http": {"enabled": True},
    }


def write_objects(state: Path, record: Path, *, redis_url: str | None = None) -> None:
    async def write() -> None:
        objects = DirectoryObjectStore.open(state)
        try:
            function = {"metadata": {"name": "canary", "namespace": "default"}}
            await objects.create(
                store.FUNCTIONS,
                {**function, "spec": spec("latest", record)},
                field_manager="test",
            )
            for number in (1, 2):
                body = {
                    "metadata": {"name": f"canary.{number}", "namespace": "default"},
                    "spec": {
                        "functionName": "canary",
                        "version": number,
                        "codeSha256": code_sha256(spec(f"v{number}", record)),
                        "configSha256": f"{number:064x}",
                        "template": spec(f"v{number}", record),
                    },
                }
                await objects.create(store.FUNCTION_VERSIONS, body, field_manager="test")
            for alias, primary, weights in (("live", "1", {"2": WEIGHT}), ("head", "$LATEST", {})):
                body = {
                    "metadata": {"name": f"canary.{alias}", "namespace": "default"},
                    "spec": {
                        "functionName": "canary",
                        "name": alias,
                        "functionVersion": primary,
                        "routingConfig": {"additionalVersionWeights": weights},
                    },
                }
                await objects.create(store.FUNCTION_ALIASES, body, field_manager="test")
            if redis_url is not None:
                mapping = {
                    "metadata": {"name": "uploads", "namespace": "default"},
                    "spec": {
                        "functionName": "canary",
                        "qualifier": "2",
                        "batchSize": 1,
                        "redis": {
                            "url": redis_url,
                            "stream": "canary-uploads",
                            "startingPosition": "TRIM_HORIZON",
                        },
                    },
                }
                await objects.create(store.EVENT_SOURCE_MAPPINGS, mapping, field_manager="test")
        finally:
            objects.close()

    asyncio.run(write())


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[DevServer, Path]]:
    folder = tmp_path_factory.mktemp("versions")
    (folder / "manifests").mkdir()
    record = folder / "record.jsonl"
    record.touch()
    write_objects(folder / "state", record)
    with dev_server([folder / "manifests"], args=["--state", str(folder / "state")]) as server:
        yield server, record


@pytest.fixture(scope="module")
def client(canary: tuple[DevServer, Path]) -> Any:
    return make_lambda_client(canary[0].url)


def invoke(client: Any, name: str, **kwargs: Any) -> tuple[str, dict[str, Any]]:
    response = client.invoke(FunctionName=name, Payload=b"{}", **kwargs)
    return response["ExecutedVersion"], json.loads(response["Payload"].read())


ARN = "arn:aws:lambda:us-east-1:default:function:canary"


@pytest.mark.parametrize(
    ("name", "qualifier", "executed", "code", "invoked"),
    [
        ("canary", None, "$LATEST", "latest", ARN),
        ("canary:1", None, "1", "v1", f"{ARN}:1"),
        ("canary", "2", "2", "v2", f"{ARN}:2"),
        (f"{ARN}:2", None, "2", "v2", f"{ARN}:2"),
        ("canary:$LATEST", None, "$LATEST", "latest", f"{ARN}:$LATEST"),
        ("canary:head", None, "$LATEST", "latest", f"{ARN}:head"),
    ],
)
def test_a_qualifier_runs_exactly_that_version(
    client: Any, name: str, qualifier: str | None, executed: str, code: str, invoked: str
) -> None:
    extra = {"Qualifier": qualifier} if qualifier else {}
    version, body = invoke(client, name, **extra)
    assert version == executed
    assert body == {"code": code, "version": executed, "arn": invoked}


@pytest.mark.parametrize("qualifier", ["7", "nope"])
def test_a_missing_version_or_alias_is_not_found(client: Any, qualifier: str) -> None:
    with pytest.raises(ClientError) as excinfo:
        invoke(client, f"canary:{qualifier}")
    error = excinfo.value.response["Error"]
    assert error["Code"] == "ResourceNotFoundException"
    assert error["Message"] == f"Function not found: {ARN}:{qualifier}"


def test_published_versions_become_active(client: Any) -> None:
    # kfaas dev writes the status the operator would: boto3's waiter reads State Active.
    for number in ("1", "2"):
        client.get_waiter("published_version_active").wait(
            FunctionName="canary", Qualifier=number, WaiterConfig={"Delay": 1, "MaxAttempts": 30}
        )


def test_the_alias_splits_ninety_ten(client: Any, canary: tuple[DevServer, Path]) -> None:
    with ThreadPoolExecutor(8) as pool:
        runs = list(pool.map(lambda _: invoke(client, "canary:live"), range(INVOCATIONS)))
    # Each invocation ran the version it reports, on that version's own code.
    assert all(body["code"] == f"v{version}" for version, body in runs)
    counts = Counter(version for version, _ in runs)
    assert set(counts) == {"1", "2"}
    # Binomial(2000, 0.1): mean 200, deviation 13.4; four deviations either side.
    mean = INVOCATIONS * WEIGHT
    deviation = (INVOCATIONS * WEIGHT * (1 - WEIGHT)) ** 0.5
    assert abs(counts["2"] - mean) <= 4 * deviation, counts
    # The gateway's series carry the version that ran.
    with urllib.request.urlopen(f"{canary[0].url}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    for version in ("1", "2"):
        series = (
            f'kfaas_invocations_total{{function="canary",namespace="default",version="{version}"}}'
        )
        assert series in text


def test_an_async_invocation_runs_the_version_named(
    client: Any, canary: tuple[DevServer, Path]
) -> None:
    _, record = canary
    for qualifier in ("2", "head"):
        response = client.invoke(
            FunctionName=f"canary:{qualifier}",
            InvocationType="Event",
            Payload=json.dumps({"record": qualifier}).encode(),
        )
        assert response["StatusCode"] == 202

    def ran() -> dict[str, str]:
        lines = [json.loads(line) for line in record.read_text().splitlines()]
        found = {line["id"]: line["code"] for line in lines}
        assert set(found) >= {"2", "head"}
        return found

    found = eventually(ran, within=30, what="both async events ran", ignoring=(AssertionError,))
    assert found["2"] == "v2" and found["head"] == "latest"


def test_an_http_trigger_names_a_version(canary: tuple[DevServer, Path]) -> None:
    server, _ = canary
    for path, codes in (
        ("canary:2", {"v2"}),
        ("canary", {"latest"}),
        ("canary:live", {"v1", "v2"}),
    ):
        with urllib.request.urlopen(f"{server.url}/fn/default/{path}/x", timeout=30) as reply:
            assert json.loads(reply.read())["code"] in codes


def test_a_qualified_mapping_runs_that_version(tmp_path: Path, redis_service: RedisServer) -> None:
    record = tmp_path / "record.jsonl"
    record.touch()
    (tmp_path / "manifests").mkdir()
    client = redis.Redis.from_url(redis_service.url)
    client.delete("canary-uploads")
    client.xadd("canary-uploads", {"body": "hello"})
    write_objects(tmp_path / "state", record, redis_url=redis_service.url)
    with dev_server([tmp_path / "manifests"], args=["--state", str(tmp_path / "state")]):

        def ran() -> list[str]:
            lines = [json.loads(line) for line in record.read_text().splitlines()]
            return [line["code"] for line in lines if line["id"] == "mapping"]

        codes = eventually(ran, within=60, what="the mapping's batch ran")
    assert set(codes) == {"v2"}
