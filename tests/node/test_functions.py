"""Functions in real pods, invoked through the gateway Service by unmodified AWS clients.

Each test applies its own Function in the release's `e2e` namespace; the chart, the image and the
node are shared by the session (conftest.py).
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from waiting import eventually

from node.kfaas_release import Release

AWS = str(Path(sys.executable).with_name("aws"))

PROBE = """\
import json, os, sys

def handler(event, context):
    print("probe says hello")
    try:
        open("/probe-write", "w").close()
        root = "writable"
    except OSError as error:
        root = type(error).__name__ + ":" + str(error.errno)
    with open("/proc/self/status") as status:
        caps = {k: v.strip() for k, v in (line.split(":", 1) for line in status if ":" in line)}
    return {
        "event": event,
        "uid": os.getuid(),
        "gid": os.getgid(),
        "root": root,
        "capEff": caps["CapEff"],
        "noNewPrivs": caps.get("NoNewPrivs"),
        "python": list(sys.version_info[:2]),
        "executionEnv": os.environ.get("AWS_EXECUTION_ENV"),
        "requestId": context.aws_request_id,
        "remaining": context.get_remaining_time_in_millis(),
    }
"""


def invoke(release: Release, name: str, payload: Any = None, **kwargs: Any) -> dict[str, Any]:
    answer: dict[str, Any] = release.lambda_client().invoke(
        FunctionName=release.qualified(name),
        Payload=json.dumps(payload if payload is not None else {}).encode(),
        **kwargs,
    )
    answer["Body"] = json.loads(answer["Payload"].read())
    return answer


@pytest.fixture(scope="module")
def probe(release: Release) -> str:
    return release.function({"app.py": PROBE}, timeoutSeconds=10)


def test_inline_function_runs_in_a_real_pod_and_answers_boto3(release: Release, probe: str) -> None:
    answer = invoke(release, probe, {"hello": "pod"})
    assert answer["StatusCode"] == 200 and "FunctionError" not in answer
    assert answer["Body"]["event"] == {"hello": "pod"}
    assert answer["ResponseMetadata"]["HTTPHeaders"]["x-amz-executed-version"] == "$LATEST"
    assert answer["Body"]["requestId"] == answer["ResponseMetadata"]["RequestId"]
    assert 0 < answer["Body"]["remaining"] <= 10_000
    # The pod that answered is a real one, on the real node.
    pods = release.running_pods(probe)
    assert pods and all(pod["status"].get("podIP") for pod in pods)


def test_pods_run_hardened_and_the_function_works_that_way(release: Release, probe: str) -> None:
    body = invoke(release, probe)["Body"]
    assert body["uid"] != 0 and body["gid"] != 0
    assert body["root"] == "OSError:30", body["root"]  # EROFS: read-only root filesystem
    assert int(body["capEff"], 16) == 0, body["capEff"]
    assert body["noNewPrivs"] == "1"
    for pod in release.running_pods(probe):
        for container in pod["spec"]["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True


def test_python311_runs_on_python_311(release: Release, probe: str) -> None:
    body = invoke(release, probe)["Body"]
    assert body["python"] == [3, 11]
    assert body["executionEnv"] == "AWS_Lambda_python3.11"


INITIALIZATION = """\
import os
import socket

def handler(event, context):
    return {
        "type": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE"),
        "pod": socket.gethostname(),
    }
"""


def test_provisioned_pods_say_so_and_on_demand_ones_too(release: Release) -> None:
    """ADR 030: a provisioned instance is a pod of its own Deployment, told so by Lambda's
    variable; a function with none provisioned runs on demand."""
    on_demand = release.function({"app.py": INITIALIZATION})
    assert invoke(release, on_demand)["Body"]["type"] == "on-demand"
    warm = release.function({"app.py": INITIALIZATION}, concurrency={"provisioned": 1})
    (pod,) = eventually(
        lambda: release.running_pods(warm, "provisioned-runtime") or None,
        within=120,
        what="the provisioned pod running",
    )

    def on_the_provisioned_pod() -> dict[str, Any] | None:
        body: dict[str, Any] = invoke(release, warm)["Body"]
        return body if body["type"] == "provisioned-concurrency" else None

    # Ready before any demand: once the gateway has its address, invocations land on it.
    body = eventually(on_the_provisioned_pod, within=30, what="an answer from the provisioned pod")
    assert body["pod"] == pod["metadata"]["name"]


def test_log_tail_and_function_errors(release: Release, probe: str) -> None:
    answer = invoke(release, probe, LogType="Tail")
    log = base64.b64decode(answer["LogResult"]).decode()
    assert "probe says hello" in log and "REPORT RequestId" in log
    failing = release.function(
        {"app.py": "def handler(event, context):\n    raise ValueError('no good: ' + event['x'])\n"}
    )
    failed = invoke(release, failing, {"x": "pods"})
    assert failed["StatusCode"] == 200 and failed["FunctionError"] == "Unhandled"
    assert failed["Body"]["errorType"] == "ValueError"
    assert failed["Body"]["errorMessage"] == "no good: pods"
    assert isinstance(failed["Body"]["stackTrace"], list)


def test_timeout_kills_and_replaces_the_worker_inside_the_pod(release: Release) -> None:
    name = release.function(
        {"app.py": "import os, time\n"
                   "def handler(event, context):\n"
                   "    time.sleep(event.get('sleep', 0))\n"
                   "    return os.getpid()\n"},
        timeoutSeconds=1,
    )  # fmt: skip
    first = invoke(release, name)["Body"]
    timed_out = invoke(release, name, {"sleep": 5})
    assert timed_out["FunctionError"] == "Unhandled"
    assert timed_out["Body"]["errorType"] == "Sandbox.Timedout"
    assert "Task timed out after 1.00 seconds" in timed_out["Body"]["errorMessage"]
    after = invoke(release, name)
    assert "FunctionError" not in after and after["Body"] != first  # a new worker process
    pods = release.running_pods(name)
    assert [status["restartCount"] for pod in pods
            for status in pod["status"]["containerStatuses"]] == [0] * len(pods)  # fmt: skip


def test_aws_cli_invokes_through_the_gateway_service(
    release: Release, probe: str, tmp_path: Path
) -> None:
    out = tmp_path / "out.json"
    done = subprocess.run(
        [AWS, "lambda", "invoke", "--endpoint-url", release.gateway,
         "--function-name", release.qualified(probe), "--payload", '{"from": "cli"}',
         str(out)],
        env={**os.environ, **release.aws_environment(), "AWS_MAX_ATTEMPTS": "1"},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["StatusCode"] == 200
    assert json.loads(out.read_text())["event"] == {"from": "cli"}


CONFIGMAP_CODE = "def handler(event, context):\n    return 'from a configmap'\n"

TRIGGER_CODE = """\
import json

def handler(event, context):
    http = event["requestContext"]["http"]
    body = json.dumps({"path": event["rawPath"], "method": http["method"]})
    return {"statusCode": 201, "headers": {"x-from": "pod"}, "body": body}
"""


def test_configmap_code(release: Release) -> None:
    release.kubectl("-n", release.namespace, "create", "configmap", "cm-code",
                    f"--from-literal=app.py={CONFIGMAP_CODE}")  # fmt: skip
    name = release.function(code={"configMap": "cm-code"})
    assert invoke(release, name)["Body"] == "from a configmap"


def test_http_trigger_reaches_the_pod(release: Release) -> None:
    name = release.function({"app.py": TRIGGER_CODE}, http={"enabled": True})
    url = f"{release.triggers}/fn/{release.namespace}/{name}/some/path?q=1"

    def call() -> tuple[int, str, dict[str, Any]] | None:
        request = urllib.request.Request(url, data=b"{}", method="POST")
        try:
            with urllib.request.urlopen(request, timeout=30) as reply:
                return reply.status, reply.headers["x-from"], json.load(reply)
        except OSError:
            return None

    status, header, body = eventually(call, within=60, what="the HTTP trigger")
    assert (status, header, body["method"]) == (201, "pod", "POST")
    assert body["path"].endswith("/some/path")
