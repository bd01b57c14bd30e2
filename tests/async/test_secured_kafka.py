"""The platform's Kafka over TLS and SASL: the async queue, destinations, a function's own cluster.

`kfaas dev --async-queue kafka://…` against the real broker's SASL_SSL (SCRAM-SHA-512) and
mutual-TLS listeners, configured only through the platform's `KFAAS_KAFKA_*` variables (the
password from a file, as the chart mounts it): every accepted event runs, and the onSuccess
record reaches a topic of the platform's Kafka, written with the same credentials. A function's
onFailure destination naming its own cluster is reached with the `tls`/`auth` Secrets of its
namespace (`kind: Secret` documents beside the manifest in kfaas dev). A wrong platform password
stops kfaas dev at once with the reason, not at the first event.
"""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer
from devserver import dev_server
from services.kafka_broker import KafkaBroker, run_coroutine
from services.kafka_listeners import SecuredListeners
from waiting import eventually

from kfaas.brokers.kafka_security import KafkaSecurity, SaslMechanism, client_options

pytestmark = pytest.mark.kafka

HANDLER = """\
import json, os

def handler(event, context):
    with open(os.environ["RECORD_FILE"], "a") as record:
        record.write(json.dumps(event) + "\\n")
    if event.get("fail"):
        raise RuntimeError(f"event {event['id']} asked to fail")
    return {"done": event["id"]}
"""
FAST = {"KFAAS_ASYNC_RETRY_BASE_SECONDS": "0.1", "KFAAS_ASYNC_REDELIVERY_SECONDS": "6"}


def write_project(
    folder: Path, async_config: dict[str, Any], secrets: Sequence[dict[str, Any]] = ()
) -> Path:
    record = folder / "record.jsonl"
    record.touch()
    function = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "work"},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"inline": {"app.py": HANDLER}},
            "environment": {"RECORD_FILE": str(record)},
            "async": async_config,
        },
    }
    (folder / "functions.yaml").write_text(yaml.safe_dump_all([function, *secrets]))
    return record


def send_event(url: str, payload: dict[str, Any]) -> str:
    request = urllib.request.Request(
        f"{url}/2015-03-31/functions/work/invocations",
        data=json.dumps(payload).encode(),
        method="POST",
        headers={"X-Amz-Invocation-Type": "Event"},
    )
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.status == 202
        return str(reply.headers["x-amzn-RequestId"])


def ran(record: Path) -> set[str]:
    return {json.loads(line)["id"] for line in record.read_text().splitlines()}


def topic_records(bootstrap: str, security: KafkaSecurity, topic: str) -> list[dict[str, Any]]:
    async def read() -> list[dict[str, Any]]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=bootstrap,
            auto_offset_reset="earliest",
            **client_options(security),
        )
        await consumer.start()
        try:
            batches = await consumer.getmany(timeout_ms=2000)
        finally:
            await consumer.stop()
        return [json.loads(r.value) for records in batches.values() for r in records]

    return run_coroutine(read())


def request_ids(records: list[dict[str, Any]]) -> set[str]:
    return {record["requestContext"]["requestId"] for record in records}


def platform(secured: SecuredListeners, mode: str, folder: Path) -> tuple[str, dict[str, str]]:
    """The platform Kafka's bootstrap servers and the `KFAAS_KAFKA_*` variables for ``mode``."""
    if mode == "scram-sha-512":
        username, password = secured.users["SCRAM-SHA-512"]
        password_file = folder / "kafka-password"
        password_file.write_text(password + "\n")  # as a mounted Secret key may end
        return secured.sasl_ssl, {
            "KFAAS_KAFKA_TLS": "true",
            "KFAAS_KAFKA_CA_FILE": str(secured.ca_file),
            "KFAAS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
            "KFAAS_KAFKA_USERNAME": username,
            "KFAAS_KAFKA_PASSWORD_FILE": str(password_file),
        }
    return secured.mtls, {
        "KFAAS_KAFKA_TLS": "true",
        "KFAAS_KAFKA_CA_FILE": str(secured.ca_file),
        "KFAAS_KAFKA_CERT_FILE": str(secured.client_cert_file),
        "KFAAS_KAFKA_KEY_FILE": str(secured.client_key_file),
    }


def scram_security(secured: SecuredListeners, mechanism: SaslMechanism) -> KafkaSecurity:
    """The test's own client of the SASL_SSL listener as ``mechanism``'s user."""
    return KafkaSecurity(**secured.sasl_client(mechanism))


def secret_documents(secured: SecuredListeners, mechanism: str) -> list[dict[str, Any]]:
    """`kafka-ca` (the broker's CA) and `kafka-user` (``mechanism``'s user), as kfaas dev reads
    Secrets: `kind: Secret` documents beside the manifests."""
    username, password = secured.users[mechanism]
    return [
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "kafka-ca"},
            "stringData": {"ca.crt": secured.ca_pem.decode()},
        },
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "kafka-user"},
            "type": "kubernetes.io/basic-auth",
            "stringData": {"username": username, "password": password},
        },
    ]


def security_of(secured: SecuredListeners, mode: str) -> KafkaSecurity:
    if mode == "scram-sha-512":
        return scram_security(secured, "SCRAM-SHA-512")
    return KafkaSecurity(
        tls=True,
        ca_pem=secured.ca_pem,
        client_cert_pem=secured.client_cert_pem,
        client_key_pem=secured.client_key_pem,
    )


@pytest.mark.parametrize("mode", ["scram-sha-512", "mtls"])
def test_events_flow_through_a_secured_kafka_queue_to_the_platforms_topic(
    kafka_service: KafkaBroker, tmp_path: Path, mode: str
) -> None:
    bootstrap, variables = platform(kafka_service.secured, mode, tmp_path)
    suffix = uuid.uuid4().hex[:8]
    topic = f"secured-success-{suffix}"
    # onSuccess names no cluster: the platform's, reached with the platform's credentials.
    record = write_project(tmp_path, {"onSuccess": {"kafka": {"topic": topic}}})
    env = {**FAST, **variables, "KFAAS_KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    queue = f"kafka://{bootstrap}/secured-async-{suffix}?partitions=2"
    with dev_server([tmp_path], env=env, args=["--async-queue", queue]) as dev:
        sent = {send_event(dev.url, {"id": f"e{n}"}) for n in range(6)}
        eventually(
            lambda: ran(record) >= {f"e{n}" for n in range(6)},
            within=60,
            what="every accepted event ran",
        )
        security = security_of(kafka_service.secured, mode)
        eventually(
            lambda: request_ids(topic_records(bootstrap, security, topic)) >= sent,
            within=30,
            what="an onSuccess record per event on the platform's topic",
        )


def test_a_wrong_platform_password_stops_kfaas_dev_with_the_reason(
    kafka_service: KafkaBroker, tmp_path: Path
) -> None:
    secured = kafka_service.secured
    write_project(tmp_path, {})
    username, _ = secured.users["SCRAM-SHA-512"]
    env = {
        "KFAAS_KAFKA_TLS": "true",
        "KFAAS_KAFKA_CA_FILE": str(secured.ca_file),
        "KFAAS_KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
        "KFAAS_KAFKA_USERNAME": username,
        "KFAAS_KAFKA_PASSWORD": "not-the-password",
    }
    queue = f"kafka://{secured.sasl_ssl}/secured-async-{uuid.uuid4().hex[:8]}"
    with (
        pytest.raises(RuntimeError, match="exited with 1") as failed,
        dev_server([tmp_path], env=env, args=["--async-queue", queue]),
    ):
        pass
    assert "async queue unavailable" in str(failed.value)
    assert "SASL SCRAM-SHA-512 authentication failed" in str(failed.value)
    assert "not-the-password" not in str(failed.value)


def test_an_onfailure_destination_on_its_own_sasl_ssl_cluster_uses_its_namespaces_secrets(
    kafka_service: KafkaBroker, tmp_path: Path
) -> None:
    secured = kafka_service.secured
    topic = f"secured-failure-{uuid.uuid4().hex[:8]}"
    secrets = secret_documents(secured, "SCRAM-SHA-256")
    on_failure = {
        "kafka": {
            "topic": topic,
            "bootstrapServers": secured.sasl_ssl,
            "tls": {"caSecretRef": {"name": "kafka-ca"}},
            "auth": {"mechanism": "SASL_SCRAM_256_AUTH", "secretRef": {"name": "kafka-user"}},
        }
    }
    record = write_project(tmp_path, {"maximumRetryAttempts": 0, "onFailure": on_failure}, secrets)
    with dev_server([tmp_path], env=FAST) as dev:
        failed = send_event(dev.url, {"id": "bad", "fail": True})
        eventually(lambda: "bad" in ran(record), within=30, what="the event ran")
        security = scram_security(secured, "SCRAM-SHA-256")
        found = eventually(
            lambda: [
                r
                for r in topic_records(secured.sasl_ssl, security, topic)
                if r["requestContext"]["requestId"] == failed
            ],
            within=30,
            what="the onFailure record on the destination's own cluster",
        )
    assert found[0]["requestContext"]["condition"] == "RetriesExhausted"
    assert found[0]["requestPayload"] == {"id": "bad", "fail": True}


def test_a_schedules_dead_letters_reach_their_own_sasl_ssl_cluster(
    kafka_service: KafkaBroker, tmp_path: Path
) -> None:
    """A tick the gateway refuses (no such function) is given up at once and dead-lettered
    with the Schedule's namespace's Secrets (kfaas dev's scheduler, ADR 026/027)."""
    secured = kafka_service.secured
    topic = f"secured-schedule-dlq-{uuid.uuid4().hex[:8]}"
    documents = [
        {
            "apiVersion": "kfaas.dev/v1alpha1",
            "kind": "Schedule",
            "metadata": {"name": "to-nowhere"},
            "spec": {
                "scheduleExpression": "rate(2 seconds)",
                "target": {"functionName": "missing"},
                "retryPolicy": {"maximumRetryAttempts": 0},
                "deadLetterConfig": {
                    "kafka": {
                        "topic": topic,
                        "bootstrapServers": secured.sasl_ssl,
                        "tls": {"caSecretRef": {"name": "kafka-ca"}},
                        "auth": {
                            "mechanism": "SASL_SCRAM_512_AUTH",
                            "secretRef": {"name": "kafka-user"},
                        },
                    }
                },
            },
        },
        *secret_documents(secured, "SCRAM-SHA-512"),
    ]
    (tmp_path / "schedule.yaml").write_text(yaml.safe_dump_all(documents))
    security = scram_security(secured, "SCRAM-SHA-512")
    with dev_server([tmp_path], env=FAST):
        records = eventually(
            lambda: topic_records(secured.sasl_ssl, security, topic),
            within=30,
            what="a dead-letter record on the Schedule's own cluster",
        )
    context = records[0]["requestContext"]
    assert context["functionArn"].endswith(":function:missing:$LATEST"), records[0]
    assert records[0]["responseContext"]["statusCode"] == 404
