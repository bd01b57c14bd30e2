"""`kfaas scheduler`: its help, its settings (the replica's name, the gateway, the metrics port, the
namespace), and the metrics app's /healthz following the engine's task."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from kfaas.scheduler.main import SchedulerProcess, metrics_app
from kfaas.scheduler.metrics import ScheduleMetrics

KFAAS = str(Path(sys.executable).with_name("kfaas"))
GATEWAY = {"KFAAS_GATEWAY_URL": "http://kfaas-gateway.kfaas-system.svc:8080"}


def test_help_names_the_role_and_its_settings() -> None:
    done = subprocess.run([KFAAS, "--help"], capture_output=True, text=True, check=True)
    assert "scheduler" in done.stdout
    done = subprocess.run([KFAAS, "scheduler", "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    for words in ("KFAAS_GATEWAY_URL", "POD_NAME", "KFAAS_SCHEDULER_METRICS_PORT", "ADR 026"):
        assert words in done.stdout.replace("\n", " "), words


def test_settings_from_the_environment() -> None:
    in_pod = SchedulerProcess.from_env(
        GATEWAY
        | {
            "POD_NAME": "kfaas-scheduler-7d9-x2",
            "KUBERNETES_SERVICE_HOST": "10.96.0.1",
            "KUBECONFIG": "/ignored",
            "KFAAS_SCHEDULER_METRICS_HOST": "0.0.0.0",
            "KFAAS_SCHEDULER_METRICS_PORT": "9091",
            "KFAAS_WATCH_NAMESPACE": "team-a",
        }
    )
    assert in_pod == SchedulerProcess(
        gateway_url=GATEWAY["KFAAS_GATEWAY_URL"],
        replica="kfaas-scheduler-7d9-x2",
        metrics_host="0.0.0.0",
        metrics_port=9091,
        namespace="team-a",
        kubeconfig=None,  # the pod's ServiceAccount
    )
    local = SchedulerProcess.from_env(GATEWAY | {"KUBECONFIG": "/tmp/kubeconfig"})
    # Two processes on one host are two replicas.
    assert local.replica == f"{socket.gethostname()}-{os.getpid()}"
    assert (local.kubeconfig, local.metrics_port, local.namespace) == (
        "/tmp/kubeconfig",
        9090,
        None,
    )


@pytest.mark.parametrize(
    ("environ", "words"),
    [
        ({}, "KFAAS_GATEWAY_URL is not set"),
        ({"KFAAS_GATEWAY_URL": "https://gw"}, "must be http://host"),
        ({"KFAAS_GATEWAY_URL": "http://gw:port"}, "must be http://host"),
        (GATEWAY | {"KFAAS_SCHEDULER_METRICS_PORT": "-1"}, "KFAAS_SCHEDULER_METRICS_PORT"),
    ],
)
def test_bad_settings_name_the_variable(environ: dict[str, str], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        SchedulerProcess.from_env(environ)


async def test_healthz_follows_the_engine_and_metrics_are_served() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    engine = asyncio.create_task(forever())
    metrics = ScheduleMetrics()
    metrics.fires.labels("team-a", "nightly", "report").inc()
    async with TestClient(TestServer(metrics_app(metrics, engine))) as client:
        assert (await client.get("/healthz")).status == 200
        text = await (await client.get("/metrics")).text()
        assert 'kfaas_schedule_fires_total{function="report",namespace="team-a"' in text
        engine.cancel()
        await asyncio.gather(engine, return_exceptions=True)
        assert (await client.get("/healthz")).status == 503
