"""Published versions on the real node (ADR 024 slice 7): boto3 publishes two versions through
the installed chart's gateway, the operator runs each on a Deployment of its own, and invoking
`name:1`, `name:2` and an alias runs exactly that version's code (`X-Amz-Executed-Version`,
botocore's `ExecutedVersion`); each version's Deployment scales up on its own invocations and
back to zero on its own.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from waiting import eventually

from node.kfaas_release import Release

# Cold starts of two versions, and scale-downs that wait for the autoscaler's 60 s stable window.
pytestmark = pytest.mark.timeout(420)

HANDLER = """\
import os

def handler(event, context):
    return {{"code": {code!r}, "version": os.environ["AWS_LAMBDA_FUNCTION_VERSION"]}}
"""
# The template a version freezes: instances leave soon after their last invocation.
SCALING = {"scaleToZeroAfterSeconds": 5, "targetUtilization": 1.0, "maxInstances": 2}


def _replicas(release: Release, deployment: str) -> int:
    found = release.kubectl.json("-n", release.namespace, "get", "deployment", deployment)
    return int(found["spec"].get("replicas") or 0)


def _invoke(release: Release, name: str, qualifier: str) -> tuple[str, dict[str, Any]]:
    answer = release.lambda_client(read_timeout=100).invoke(
        FunctionName=release.qualified(name), Qualifier=qualifier, Payload=b"{}"
    )
    assert "FunctionError" not in answer, answer["Payload"].read()
    body: dict[str, Any] = json.loads(answer["Payload"].read())
    return str(answer["ExecutedVersion"]), body


def _publish(release: Release, name: str, code: str) -> str:
    """Put ``code`` into `$LATEST` (kubectl, so the template keeps SCALING) and publish it."""
    release.function({"app.py": HANDLER.format(code=code)}, name=name, scaling=SCALING)
    generation = release.kubectl.json("-n", release.namespace, "get", f"function/{name}")
    eventually(
        lambda: release.kubectl.json("-n", release.namespace, "get", f"function/{name}")[
            "status"
        ].get("observedGeneration")
        == generation["metadata"]["generation"],
        within=60, interval=1, what="the operator saw the new code",
    )  # fmt: skip
    client = release.lambda_client()
    published = client.publish_version(FunctionName=release.qualified(name))
    number = str(published["Version"])
    client.get_waiter("published_version_active").wait(
        FunctionName=release.qualified(name),
        Qualifier=number,
        WaiterConfig={"Delay": 2, "MaxAttempts": 60},
    )
    return number


@pytest.fixture(scope="module")
def versioned(release: Release) -> str:
    release.allow_deploys()
    name = f"ver-{uuid.uuid4().hex[:8]}"
    assert _publish(release, name, "one") == "1"
    assert _publish(release, name, "two") == "2"
    release.lambda_client().create_alias(
        FunctionName=release.qualified(name), Name="live", FunctionVersion="1"
    )
    return name


def test_each_version_runs_its_own_code_and_says_so(release: Release, versioned: str) -> None:
    # Nothing invoked a version yet: each waits at zero.
    assert _replicas(release, f"{versioned}-1-fnv") == 0
    assert _replicas(release, f"{versioned}-2-fnv") == 0
    assert _invoke(release, versioned, "1") == ("1", {"code": "one", "version": "1"})
    assert _replicas(release, f"{versioned}-2-fnv") == 0  # version 1's demand, not 2's
    assert _invoke(release, versioned, "2") == ("2", {"code": "two", "version": "2"})
    assert _invoke(release, versioned, "live") == ("1", {"code": "one", "version": "1"})
    assert _invoke(release, versioned, "$LATEST") == (
        "$LATEST",
        {"code": "two", "version": "$LATEST"},
    )
    # Each version's instances are its own pods, not $LATEST's.
    pods = release.kubectl.json(
        "-n", release.namespace, "get", "pods",
        "-l", f"kfaas.dev/function={versioned},kfaas.dev/version=2",
    )  # fmt: skip
    assert pods["items"], "version 2 has pods of its own"


def test_an_alias_moved_runs_the_new_version(release: Release, versioned: str) -> None:
    release.lambda_client().update_alias(
        FunctionName=release.qualified(versioned), Name="live", FunctionVersion="2"
    )
    eventually(
        lambda: _invoke(release, versioned, "live")[0] == "2",
        within=30, interval=1, what="the alias runs version 2",
    )  # fmt: skip


def test_each_version_scales_to_zero_on_its_own(release: Release, versioned: str) -> None:
    # Keep version 2 busy while version 1 has no more invocations: 1 goes to zero alone.
    def settled() -> bool:
        _invoke(release, versioned, "2")
        return _replicas(release, f"{versioned}-1-fnv") == 0

    # The stable window (60 s) must forget version 1's invocations before it goes to zero.
    eventually(settled, within=150, interval=1, what="version 1 back at zero")
    assert _replicas(release, f"{versioned}-2-fnv") >= 1
    eventually(
        lambda: _replicas(release, f"{versioned}-2-fnv") == 0,
        within=150, interval=1, what="version 2 back at zero once idle",
    )  # fmt: skip
