"""`kfaas poller` with a KUBECONFIG reports into its EventSourceMapping's status on the real
control plane: lag, the last batch's time and outcome, and the Polling condition."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from devserver import dev_server
from waiting import eventually_async

from streams.kit import FAST, Project, RedisTools, unique

CRDS = Path(__file__).parents[2] / "crds"


def live_status(cluster: Any, name: str) -> dict[str, Any]:
    body = json.loads(cluster.kubectl("get", "eventsourcemapping", name, "-o", "json").stdout)
    status: dict[str, Any] = body.get("status") or {}
    return status


@pytest.mark.redis
async def test_a_redis_poller_reports_lag_last_batch_and_result(
    kwok_service: Any, project: Project, redis: RedisTools, pollers: Any
) -> None:
    kwok_service.install_crds(CRDS)
    stream, name = unique("s"), unique("status")
    project.function("reported", mode="error_on_poison")
    mapping = project.mapping(
        name,
        "reported",
        redis={"url": redis.url, "stream": stream, "startingPosition": "TRIM_HORIZON"},
        maximumRetryAttempts=0,
    )
    project.documents.remove(mapping)
    kwok_service.kubectl("apply", "-f", "-", input=json.dumps(mapping))
    await redis.add(stream, [{"body": str(n)} for n in range(3)])
    with dev_server([project.write()], env=FAST) as dev:
        poller = pollers(
            mapping,
            dev.url,
            KUBECONFIG=str(kwok_service.kubeconfig),
            KFAAS_POLLER_STATUS_SECONDS="1",
        )
        poller.start()
        ok = await eventually_async(
            lambda: (
                (s := live_status(kwok_service, name)).get("lastProcessingResult") == "OK"
                and s.get("lag") == 0
                and s
            ),
            within=30,
            what="status with lag 0 and an OK result",
        )
        assert ok["lastBatchAt"].endswith("Z")
        polling = next(c for c in ok["conditions"] if c["type"] == "Polling")
        assert (polling["status"], polling["reason"]) == ("True", "Polling")
        table = kwok_service.kubectl("get", "eventsourcemapping", name).stdout
        header, row = table.splitlines()[:2]
        # Source and State are the operator's (not running here): read LAG by its position.
        column = header.index("LAG")
        assert row[column:].split()[0] == "0"

        # A failing batch is reported soon after, not only at the next tick.
        await redis.add(stream, [{"body": "poison"}])
        await eventually_async(
            lambda: (
                live_status(kwok_service, name).get("lastProcessingResult")
                == "PROBLEM: Function call failed"
            ),
            within=30,
            what="the failed batch in the status",
        )
        assert poller.stop() == 0
    assert "reporting status to EventSourceMapping" in poller.output()
    kwok_service.kubectl("delete", "eventsourcemapping", name)
