"""Secured Kafka mappings without a broker: where Secrets are read, and what is reported (ADR 027).

A mapping naming a Secret that does not exist polls nothing and says so in `Polling=False` with
the reason `AuthenticationFailed`; the Secret is read again at each attempt, so creating it is
enough. An on-failure Kafka destination without servers of its own uses the source's cluster and
the source's security; with its own servers, its own `tls`/`auth`. In a pod the Secrets are the
folders the operator mounts. The real broker's listeners: test_kafka_security_modes.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from waiting import eventually_async

from kfaas.config import Settings
from kfaas.manifests import EventSourceMapping
from kfaas.pollers.destinations import KafkaTopicDestination
from kfaas.pollers.metrics import AUTHENTICATION_FAILED, SOURCE_UNREACHABLE, PollerMetrics
from kfaas.pollers.runner import MappingRunner
from kfaas.pollers.secrets import FolderSecrets
from kfaas.pollers.status import PollerReport, polling_condition, processing_result

SCRAM = {"mechanism": "SASL_SCRAM_512_AUTH", "secretRef": {"name": "creds"}}


def secured(**spec: Any) -> EventSourceMapping:
    kafka = {"bootstrapServers": "127.0.0.1:1", "topic": "t", "tls": {}, "auth": SCRAM}
    return EventSourceMapping.model_validate(
        {
            "metadata": {"name": "m", "namespace": "media"},
            "spec": {"functionName": "f", "kafka": kafka, **spec},
        }
    )


class Secrets:
    def __init__(self) -> None:
        self.data: dict[str, dict[str, bytes]] = {}
        self.reads: list[str] = []

    async def read(self, name: str) -> Mapping[str, bytes] | None:
        self.reads.append(name)
        return self.data.get(name)


def runner(mapping: EventSourceMapping, secrets: Secrets) -> MappingRunner:
    return MappingRunner(
        mapping,
        gateway_url="http://127.0.0.1:9",
        settings=Settings(),
        metrics=PollerMetrics(),
        read_secret=secrets.read,
    )


async def test_a_missing_secret_is_reported_and_read_again_until_it_exists() -> None:
    secrets = Secrets()
    mapping = runner(secured(), secrets)
    activity = mapping.metrics.activity
    task = asyncio.create_task(mapping.run())
    try:

        async def missing() -> bool:
            return activity.source_problem is not None

        await eventually_async(missing, within=10, what="the missing Secret reported")
        assert activity.source_problem == "Secret 'creds' (auth.secretRef) does not exist"
        assert activity.source_reason == AUTHENTICATION_FAILED
        condition = polling_condition(PollerReport.of(mapping.metrics))
        assert (condition["status"], condition["reason"]) == ("False", AUTHENTICATION_FAILED)
        assert "Secret 'creds'" in condition["message"]
        result = processing_result(PollerReport.of(mapping.metrics))
        assert result == (
            "PROBLEM: Authentication error: Secret 'creds' (auth.secretRef) does not exist"
        )
        # Created: the next attempt reads it and gets as far as the (unreachable) broker.
        secrets.data["creds"] = {"username": b"alice", "password": b"pw"}

        async def unreachable() -> bool:
            return activity.source_reason == SOURCE_UNREACHABLE

        await eventually_async(unreachable, within=10, what="the Secret read again")
        assert "pw" not in (activity.source_problem or "").replace("kafka", "")
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def test_a_destination_without_servers_uses_the_source_cluster_and_security() -> None:
    secrets = Secrets()
    secrets.data["creds"] = {"username": b"alice", "password": b"pw"}
    secrets.data["other"] = {"username": b"bob", "password": b"pw2"}
    same = runner(secured(destinationConfig={"onFailure": {"kafka": {"topic": "dlq"}}}), secrets)
    assert isinstance(same.destination, KafkaTopicDestination)
    assert same.destination.bootstrap_servers == "127.0.0.1:1"
    security = await same.destination.resolve_security()
    assert security is not None and security.username == "alice" and security.tls
    own = {
        "topic": "dlq",
        "bootstrapServers": "other:9092",
        "auth": {"mechanism": "SASL_SCRAM_256_AUTH", "secretRef": {"name": "other"}},
    }
    elsewhere = runner(secured(destinationConfig={"onFailure": {"kafka": own}}), secrets)
    assert isinstance(elsewhere.destination, KafkaTopicDestination)
    assert elsewhere.destination.bootstrap_servers == "other:9092"
    security = await elsewhere.destination.resolve_security()
    assert security is not None and security.username == "bob"
    assert security.protocol == "SASL_PLAINTEXT"


async def test_mounted_secrets_are_folders_of_keys(tmp_path: Path) -> None:
    creds = tmp_path / "creds"
    (creds / "..2026_11_30").mkdir(parents=True)
    (creds / "..2026_11_30" / "password").write_bytes(b"pw")
    (creds / "..data").symlink_to("..2026_11_30")
    (creds / "password").symlink_to("..data/password")
    (tmp_path / "empty").mkdir()  # an optional Secret that does not exist
    folder = FolderSecrets(tmp_path)
    assert await folder.read("creds") == {"password": b"pw"}
    assert await folder.read("empty") is None
    assert await folder.read("absent") is None
