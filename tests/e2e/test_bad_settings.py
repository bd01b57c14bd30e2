"""Every role's entry point answers a bad setting alike: one line naming the variable, exit 2.

Each case runs the real command (`.venv/bin/kfaas ROLE`) with one bad value of a kind (a number, a
duration, a choice, a URL or a port) and nothing else unusual; the settings are read before
anything starts, so no service is needed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

KFAAS = str(Path(sys.executable).with_name("kfaas"))

CASES = [
    # (role, variable, bad value, kind)
    ("dev", "KFAAS_MAX_CONNECTIONS", "many", "number"),
    ("dev", "KFAAS_ASYNC_RETRY_BASE_SECONDS", "soon", "duration"),
    ("dev", "KFAAS_LOG_LEVEL", "bogus", "enum"),
    ("dev", "KFAAS_ASYNC_QUEUE", "ftp://queue", "url"),
    ("dev", "KFAAS_POLLER_METRICS_PORT", "http", "port"),
    ("dev", "KFAAS_POLLER_CLAIM_IDLE_SECONDS", "abc", "duration"),
    ("gateway", "KFAAS_GATEWAY_PORT", "eighty", "port"),
    ("gateway", "KFAAS_BODY_MEMORY_BYTES", "lots", "number"),
    ("gateway", "KFAAS_BODY_TIMEOUT_SECONDS", "soon", "duration"),
    ("gateway", "KFAAS_GATEWAY_BACKEND", "cloud", "enum"),
    ("gateway", "KFAAS_AUTH", "maybe", "enum"),
    ("gateway", "KFAAS_LOG_LEVEL", "bogus", "enum"),
    ("gateway", "KFAAS_ASYNC_QUEUE", "ftp://queue", "url"),
    ("gateway", "KFAAS_KAFKA_TLS", "maybe", "enum"),
    ("gateway", "KFAAS_KAFKA_SASL_MECHANISM", "GSSAPI", "enum"),
    ("dev", "KFAAS_KAFKA_CA_FILE", "/nonexistent/ca.crt", "file"),
    ("poller", "KFAAS_POLLER_METRICS_PORT", "99999", "port"),
    ("poller", "KFAAS_POLLER_STATUS_SECONDS", "often", "duration"),
    ("poller", "KFAAS_POLLER_CLAIM_IDLE_SECONDS", "abc", "duration"),
    ("poller", "KFAAS_LOG_LEVEL", "bogus", "enum"),
    ("poller", "KFAAS_GATEWAY_URL", "ftp://gateway", "url"),
    ("scheduler", "KFAAS_SCHEDULER_POLL_SECONDS", "often", "duration"),
    ("scheduler", "KFAAS_SCHEDULER_METRICS_PORT", "99999", "port"),
    ("scheduler", "KFAAS_GATEWAY_URL", "ftp://gateway", "url"),
    ("scheduler", "KFAAS_KAFKA_PASSWORD_FILE", "/nonexistent/password", "file"),
    ("runtime", "KFAAS_PER_INSTANCE", "many", "number"),
    ("runtime", "KFAAS_TIMEOUT_SECONDS", "soon", "duration"),
    ("runtime", "KFAAS_PYTHON_CHANNEL", "pigeon", "enum"),
    ("runtime", "KFAAS_RUNTIME_PORT", "99999", "port"),
    ("runtime", "KFAAS_READY_FD", "stdout", "number"),
    ("code-store", "KFAAS_CODE_STORE_PORT", "eighty", "port"),
    ("code-store", "KFAAS_CODE_STORE_GC_GRACE_SECONDS", "soon", "duration"),
    ("fetch-code", "KFAAS_CODE_STORE_URL", "ftp://store", "url"),
]


def clean_environment() -> dict[str, str]:
    """This process's environment without any kfaas setting the test run may have set."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("KFAAS_", "OTEL_")) and name not in ("AWS_REGION", "POD_NAME")
    }


@pytest.mark.parametrize(
    ("role", "variable", "value"),
    [case[:3] for case in CASES],
    ids=[f"{role}-{kind}-{variable}" for role, variable, _, kind in CASES],
)
def test_a_bad_value_is_one_line_naming_the_variable_and_exit_2(
    role: str, variable: str, value: str, tmp_path: Path
) -> None:
    env = {**clean_environment(), variable: value}
    argv = [KFAAS, role]
    if role in ("dev", "gateway"):
        argv.append(str(tmp_path))  # never reached: the settings fail first
    if role == "runtime":
        env.update({"_HANDLER": "app.handler", "LAMBDA_TASK_ROOT": str(tmp_path)})
    if role == "scheduler":
        env.setdefault("KFAAS_GATEWAY_URL", "http://127.0.0.1:1")  # it needs one
    done = subprocess.run(
        argv, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    lines = done.stderr.splitlines()
    assert done.returncode == 2, done.stderr
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"kfaas {role}: "), lines
    assert variable in lines[0] and value in lines[0], lines
