"""`kfaas poller`: its configuration errors, and the metrics it serves while it works."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from devserver import dev_server
from waiting import eventually_async

from streams.kit import FAST, KFAAS, KafkaTools, Project, RedisTools, unique


def run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [KFAAS, "poller", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


MAPPING: dict[str, Any] = {
    "apiVersion": "kfaas.dev/v1alpha1",
    "kind": "EventSourceMapping",
    "metadata": {"name": "m"},
    "spec": {"functionName": "f", "redis": {"url": "redis://127.0.0.1:1/0", "stream": "s"}},
}


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"KFAAS_GATEWAY_URL": "http://gw"}, (), "no mapping: set KFAAS_MAPPING or pass --mapping"),
        ({"KFAAS_MAPPING": json.dumps(MAPPING)}, (), "KFAAS_GATEWAY_URL is not set"),
        (
            {
                "KFAAS_MAPPING": json.dumps(MAPPING),
                "KFAAS_GATEWAY_URL": "gateway:8080",
                "KFAAS_POLLER_METRICS_PORT": "0",
            },
            (),
            "must be http://host[:port]",
        ),
        (
            {"KFAAS_GATEWAY_URL": "http://gw", "KFAAS_MAPPING": "kind: EventSourceMapping\n"},
            (),
            "apiVersion",
        ),
        (
            {
                "KFAAS_GATEWAY_URL": "http://gw",
                "KFAAS_MAPPING": json.dumps(
                    {**MAPPING, "spec": {**MAPPING["spec"], "batchSize": 0}}
                ),
            },
            (),
            "spec.batchSize: 0 is below the minimum 1",
        ),
        ({"KFAAS_GATEWAY_URL": "http://gw"}, ("--mapping", "/no/such.yaml"), "cannot be read"),
        (
            {
                "KFAAS_GATEWAY_URL": "http://gw",
                "KFAAS_MAPPING": json.dumps(
                    {
                        **MAPPING,
                        "spec": {
                            **MAPPING["spec"],
                            "filterCriteria": {
                                "filters": [{"pattern": '{"body": [{"regex": "."}]}'}]
                            },
                        },
                    }
                ),
                "KFAAS_POLLER_METRICS_PORT": "0",
            },
            (),
            'unknown matcher "regex"',
        ),
    ],
)
def test_configuration_errors_exit_2_with_a_reason(
    env: dict[str, str], args: tuple[str, ...], message: str
) -> None:
    result = run({"KFAAS_MAPPING": "", **env}, *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        return str(reply.read().decode())


def sample(text: str, name: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            total += float(line.rsplit(" ", 1)[1])
    return total


@pytest.mark.kafka
async def test_metrics_of_a_kafka_poller(
    project: Project, kafka: KafkaTools, pollers: Any, tmp_path: Path
) -> None:
    topic, group = kafka.topic(), unique("g")
    out = project.function("measured", mode="error_on_poison")
    mapping = project.mapping(
        "measured",
        "measured",
        kafka={
            "bootstrapServers": kafka.bootstrap,
            "topic": topic,
            "consumerGroupId": group,
            "startingPosition": "TRIM_HORIZON",
        },
        batchSize=5,
        maximumRetryAttempts=0,
        filterCriteria={"filters": [{"pattern": '{"value": [{"anything-but": "skip"}]}'}]},
        destinationConfig={"onFailure": {"kafka": {"topic": unique("dlq")}}},
    )
    project.documents.remove(mapping)
    await kafka.produce(topic, [b"a", b"skip", b"c", b"d", b"e", b"poison", b"g"])
    port = free_port()
    with dev_server([project.write()], env=FAST) as dev:
        poller = pollers(mapping, dev.url, KFAAS_POLLER_METRICS_PORT=str(port))
        poller.start()
        await kafka.wait_committed(group, topic, [7])
        await eventually_async(
            lambda: "metrics on" in poller.output(), within=30, what="the metrics line"
        )
        text = scrape(port)
        assert poller.stop() == 0
    labels = '{function="measured",mapping="measured",namespace="default"}'
    assert f"kfaas_poller_records_total{labels} 7.0" in text
    assert sample(text, "kfaas_poller_filtered_records_total") == 1
    assert sample(text, "kfaas_poller_dead_lettered_records_total") >= 1
    assert sample(text, "kfaas_poller_batches_total") >= 2
    assert sample(text, "kfaas_poller_batch_size_count") >= 2
    assert 'kind="function_error"' in text
    assert "kfaas_poller_offset_lag" in text
    assert "kfaas_poller_iterator_age_seconds" in text
    assert "a" in out.values() and "skip" not in out.values()


@pytest.mark.redis
async def test_a_mapping_that_cannot_run_exits_2(
    project: Project, redis: RedisTools, pollers: Any
) -> None:
    # A Redis mapping whose Kafka destination names no servers cannot run: exit 2, no retry loop.
    mapping = project.mapping(
        "nodest",
        "f",
        redis={"url": redis.url, "stream": unique("s")},
        destinationConfig={"onFailure": {"kafka": {"topic": "dlq"}}},
    )
    result = run(
        {
            "KFAAS_MAPPING": json.dumps(mapping),
            "KFAAS_GATEWAY_URL": "http://127.0.0.1:9",
            "KFAAS_POLLER_METRICS_PORT": "0",
            "KFAAS_KAFKA_BOOTSTRAP_SERVERS": "",
        }
    )
    assert result.returncode == 2
    assert "needs bootstrapServers" in result.stderr
