"""Other real clients and surfaces: the AWS CLI, `kfaas invoke`, and the gateway's /metrics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

from devserver import KFAAS, DevServer

AWS = str(Path(sys.executable).with_name("aws"))


def test_aws_cli_invokes_unmodified(dev: DevServer, tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    env = {
        **os.environ,
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_MAX_ATTEMPTS": "1",
    }
    result = subprocess.run(
        [
            AWS, "lambda", "invoke",
            "--endpoint-url", dev.url,
            "--function-name", "echo",
            "--payload", '{"from": "cli"}',
            str(out),
        ],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["StatusCode"] == 200
    assert json.loads(out.read_text()) == {"from": "cli"}


def test_kfaas_invoke(dev: DevServer) -> None:
    ok = subprocess.run(
        [KFAAS, "invoke", "echo", "--payload", '{"k": 1}', "--endpoint", dev.url, "--tail"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert ok.returncode == 0 and json.loads(ok.stdout) == {"k": 1}
    assert "REPORT RequestId" in ok.stderr
    failed = subprocess.run(
        [KFAAS, "invoke", "fail", "--endpoint", dev.url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert failed.returncode == 1 and json.loads(failed.stdout)["errorType"] == "ValueError"
    missing = subprocess.run(
        [KFAAS, "invoke", "nope", "--endpoint", dev.url],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert missing.returncode == 2 and "ResourceNotFoundException" in missing.stderr


def test_health_endpoints(dev: DevServer) -> None:
    for path in ("/healthz", "/readyz"):
        with urllib.request.urlopen(f"{dev.url}{path}", timeout=10) as reply:
            assert reply.status == 200, path


def test_gateway_metrics(dev: DevServer) -> None:
    subprocess.run([KFAAS, "invoke", "echo", "--endpoint", dev.url], check=True, timeout=60,
                   capture_output=True)  # fmt: skip
    with urllib.request.urlopen(f"{dev.url}/metrics", timeout=10) as reply:
        text = reply.read().decode()
    labels = '{function="echo",namespace="default",version="$LATEST"}'
    for name in ("kfaas_invocations_total", "kfaas_duration_seconds_count"):
        assert f"{name}{labels}" in text, name
    assert "kfaas_cold_starts_total" in text
    assert "kfaas_init_duration_seconds" in text
