"""A mapping on SASL_SSL Kafka with Secrets the real kubelet mounts into its poller pod (ADR 027).

The operator reads no Secret: it mounts the ones a mapping names into the poller pods by name, and
the poller reads the files at every (re)connect. Only a real kubelet mounts them and refreshes them
when a Secret changes, so this is where a fixed password is shown to reach a running poller.
The broker's SASL_SSL listener for pods is on the node's bridge address, its certificate signed by
the test CA (`pod_kafka_service.sasl_ssl_for_pods`).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest
import redis
from services.kafka_broker import KafkaBroker
from services.kafka_listeners import POD_MECHANISM
from waiting import eventually

from node.kfaas_release import Kubectl, Release
from node.test_streams import KAFKA_SINK, produce, stream_fields

# A poller pod starts twice and the kubelet refreshes a changed Secret within its sync period
# (about a minute), then the poller's next attempt comes after its backoff (at most 30 s): the
# fix took 64 and 82 s to deliver here, the whole test about 100 s, more than the default 120 s
# with the release's install when it runs alone.
pytestmark = pytest.mark.timeout(300)


def _secrets(namespace: str, ca: bytes, username: str, password: str) -> list[dict[str, Any]]:
    """`kafka-ca` (`ca.crt`) and `kafka-user` (a basic-auth Secret) as a mapping names them."""
    return [
        {
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "kafka-ca", "namespace": namespace},
            "stringData": {"ca.crt": ca.decode()},
        },
        {
            "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/basic-auth",
            "metadata": {"name": "kafka-user", "namespace": namespace},
            "stringData": {"username": username, "password": password},
        },
    ]  # fmt: skip


def _conditions(kubectl: Kubectl, namespace: str, mapping: str) -> dict[str, dict[str, Any]]:
    found = kubectl.json("-n", namespace, "get", "eventsourcemapping", mapping)
    return {c["type"]: c for c in found.get("status", {}).get("conditions", [])}


def _ready(kubectl: Kubectl, namespace: str, mapping: str, status: str) -> dict[str, Any] | None:
    ready = _conditions(kubectl, namespace, mapping).get("Ready", {})
    return ready if ready.get("status") == status else None


def test_sasl_ssl_mapping_with_mounted_secrets_recovers_from_a_wrong_password(
    release: Release, kubectl: Kubectl, platform_redis_url: str, pod_kafka_service: KafkaBroker
) -> None:
    tag = str(time.monotonic_ns())[-8:]
    namespace, topic, sink, mapping = f"e2e-sk-{tag}", f"secured-{tag}", f"sink-{tag}", "secured"
    kubectl("create", "namespace", namespace)
    try:
        here = dataclasses.replace(release, namespace=namespace, _clients={})
        secured = pod_kafka_service.secured
        username, password = secured.users[POD_MECHANISM]
        pod_kafka_service.create_topic(topic)  # one partition: one order to check
        store = redis.Redis.from_url(platform_redis_url, decode_responses=True)

        def delivered() -> list[str]:
            return [fields["n"] for fields in stream_fields(store, sink)]

        for document in _secrets(namespace, secured.ca_pem, username, password):
            here.apply(document)
        function = here.function(
            {"app.py": KAFKA_SINK},
            environment={"SINK_URL": platform_redis_url, "SINK_STREAM": sink},
            timeoutSeconds=30,
        )
        here.apply({
            "apiVersion": "kfaas.dev/v1alpha1", "kind": "EventSourceMapping",
            "metadata": {"name": mapping, "namespace": namespace},
            "spec": {"functionName": function, "batchSize": 10, "kafka": {
                "bootstrapServers": pod_kafka_service.sasl_ssl_for_pods, "topic": topic,
                "startingPosition": "TRIM_HORIZON",
                "tls": {"caSecretRef": {"name": "kafka-ca"}},
                "auth": {"mechanism": "SASL_SCRAM_512_AUTH", "secretRef": {"name": "kafka-user"}},
            }},
        })  # fmt: skip
        first = [f"a{n}" for n in range(5)]
        produce(pod_kafka_service.bootstrap_servers, topic, first)
        eventually(
            lambda: set(delivered()) >= set(first) or None, within=120, what="the first records"
        )

        # A wrong password: a running consumer keeps its connection (ADR 027), so the poller pod
        # is replaced and its successor mounts the wrong Secret.
        (wrong,) = _secrets(namespace, secured.ca_pem, username, "not-the-password")[1:]
        here.apply(wrong)
        kubectl("-n", namespace, "delete", "pods", "-l", "kfaas.dev/component=poller")

        def refused() -> dict[str, dict[str, Any]] | None:
            conditions = _conditions(kubectl, namespace, mapping)
            polling = conditions.get("Polling", {})
            return conditions if polling.get("status") == "False" else None

        conditions = eventually(refused, within=120, what="Polling=False on the wrong password")
        assert conditions["Polling"]["reason"] == "AuthenticationFailed"
        assert f"authentication failed for user '{username}'" in conditions["Polling"]["message"]
        assert "not-the-password" not in conditions["Polling"]["message"]
        # The operator folds Polling into Ready (ADR 032).
        ready = eventually(lambda: _ready(kubectl, namespace, mapping, "False"), within=60,
                           what="Ready False")  # fmt: skip
        assert ready["reason"] == "AuthenticationFailed"

        meanwhile = [f"b{n}" for n in range(10)]
        produce(pod_kafka_service.bootstrap_servers, topic, meanwhile)
        time.sleep(5)
        assert not any(n.startswith("b") for n in delivered())  # refused: nothing consumed

        # The fix: the kubelet refreshes the mounted file, the poller's next attempt reads it.
        fixed_at = time.monotonic()
        here.apply(_secrets(namespace, secured.ca_pem, username, password)[1])
        eventually(
            lambda: set(delivered()) >= set(meanwhile) or None,
            within=180,
            what="the records produced while the password was wrong",
        )
        took = time.monotonic() - fixed_at
        arrived = [n for n in dict.fromkeys(delivered()) if n.startswith("b")]
        assert arrived == meanwhile  # all of them, in order (duplicates are not refused)
        eventually(lambda: _ready(kubectl, namespace, mapping, "True"), within=60,
                   what="Ready True again")  # fmt: skip
        print(f"the fixed password delivered the waiting records {took:.0f} s after the fix")
    finally:
        kubectl("delete", "namespace", namespace, "--wait=false")
