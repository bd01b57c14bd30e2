"""Mappings consume and dead-letter through each secured Kafka mode in `kfaas dev` (ADR 027).

The real broker's listeners (services.kafka_listeners): TLS with the test CA, mutual TLS, SASL
PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 over TLS. Credentials are `v1` Secret documents beside the
manifests, as `kubectl apply` would take them. Each mapping reads its topic through its listener
and dead-letters a poison record to a topic on the same cluster with the same security; a
destination naming its own cluster uses its own `tls`/`auth`. A wrong password or a CA that does
not trust the broker gives `Polling=False` naming the failure, a destination refusing the password
holds the commit before its record, and fixing the Secret in the file delivers every record, none
lost or skipped.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from devserver import dev_server, make_lambda_client
from waiting import eventually_async

from streams.kit import FAST, KafkaTools, Project, unique

pytestmark = pytest.mark.kafka

MODES = ("tls", "mtls", "plain", "scram-256", "scram-512")
SASL = {"plain": "PLAIN", "scram-256": "SCRAM-SHA-256", "scram-512": "SCRAM-SHA-512"}
MECHANISMS = {
    "mtls": "CLIENT_CERTIFICATE_TLS_AUTH",
    "plain": "BASIC_AUTH",
    "scram-256": "SASL_SCRAM_256_AUTH",
    "scram-512": "SASL_SCRAM_512_AUTH",
}


def secret(name: str, string_data: dict[str, str], kind: str = "Opaque") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "type": kind,
        "stringData": string_data,
    }


def credentials(secured: Any, mode: str, *, password: str | None = None) -> dict[str, Any]:
    """The auth Secret of a mode (`kafka-<mode>`), with the broker's password unless given."""
    if mode == "mtls":
        pems = {
            "tls.crt": secured.client_cert_pem.decode(),
            "tls.key": secured.client_key_pem.decode(),
        }
        return secret("kafka-mtls", pems, "kubernetes.io/tls")
    username, real = secured.users[SASL[mode]]
    return secret(
        f"kafka-{mode}",
        {"username": username, "password": password or real},
        "kubernetes.io/basic-auth",
    )


def listener(secured: Any, mode: str) -> str:
    servers: str = {"tls": secured.ssl, "mtls": secured.mtls}.get(mode, secured.sasl_ssl)
    return servers


def source(secured: Any, mode: str, topic: str, group: str, ca: str = "kafka-ca") -> dict[str, Any]:
    kafka: dict[str, Any] = {
        "bootstrapServers": listener(secured, mode),
        "topic": topic,
        "consumerGroupId": group,
        "startingPosition": "TRIM_HORIZON",
        "tls": {"caSecretRef": {"name": ca}},
    }
    if mode in MECHANISMS:
        kafka["auth"] = {"mechanism": MECHANISMS[mode], "secretRef": {"name": f"kafka-{mode}"}}
    return kafka


def plaintext(kafka: KafkaTools, topic: str, group: str) -> dict[str, Any]:
    return {
        "bootstrapServers": kafka.bootstrap,
        "topic": topic,
        "consumerGroupId": group,
        "startingPosition": "TRIM_HORIZON",
    }


def secured_destination(secured: Any, topic: str, mode: str) -> dict[str, Any]:
    """An on-failure topic on the SASL_SSL listener, with its own tls and `kafka-<mode>` auth."""
    return {
        "topic": topic,
        "bootstrapServers": secured.sasl_ssl,
        "tls": {"caSecretRef": {"name": "kafka-ca"}},
        "auth": {"mechanism": MECHANISMS[mode], "secretRef": {"name": f"kafka-{mode}"}},
    }


def polling_condition(state: Path, name: str) -> dict[str, Any] | None:
    """The `Polling` condition kfaas dev's pollers wrote on the stored mapping."""
    for path in state.rglob(f"eventsourcemappings/default/{name}.yaml"):
        body = yaml.safe_load(path.read_text())
        for condition in (body.get("status") or {}).get("conditions") or []:
            if condition["type"] == "Polling":
                return dict(condition)
    return None


async def test_each_mode_consumes_and_dead_letters(
    project: Project, kafka: KafkaTools, kafka_service: Any
) -> None:
    secured = kafka_service.secured
    project.documents.append(secret("kafka-ca", {"ca.crt": secured.ca_pem.decode()}))
    runs = {}
    for mode in MODES:
        topic, dlq, group = kafka.topic(), kafka.topic(), unique(f"g-{mode}")
        out = project.function(f"fn-{mode}", mode="error_on_poison")
        project.mapping(
            f"m-{mode}",
            f"fn-{mode}",
            kafka=source(secured, mode, topic, group),
            batchSize=1,
            maximumRetryAttempts=0,
            destinationConfig={"onFailure": {"kafka": {"topic": dlq}}},
        )
        if mode in MECHANISMS:
            project.documents.append(credentials(secured, mode))
        # Written through the plaintext listener: the topics are the same behind each one.
        await kafka.produce(topic, [f"{mode}-a".encode(), b"poison", f"{mode}-c".encode()])
        runs[mode] = (topic, dlq, group, out)
    # A plaintext source whose destination is another cluster (here another listener) with its
    # own tls and auth.
    topic, dlq, group = kafka.topic(), kafka.topic(), unique("g-own")
    runs["own"] = (topic, dlq, group, project.function("fn-own", mode="error_on_poison"))
    project.mapping(
        "m-own",
        "fn-own",
        kafka=plaintext(kafka, topic, group),
        batchSize=1,
        maximumRetryAttempts=0,
        destinationConfig={"onFailure": {"kafka": secured_destination(secured, dlq, "scram-256")}},
    )
    await kafka.produce(topic, [b"own-a", b"poison", b"own-c"])
    with dev_server([project.write()], env=FAST) as dev:
        for mode, (topic, dlq, group, out) in runs.items():
            await kafka.wait_committed(group, topic, [3], within=60)
            copy, failure = await kafka.read(dlq, 2)
            assert copy.value == b"poison", mode
            record = json.loads(failure.value)
            assert record["requestContext"]["condition"] == "RetryAttemptsExhausted"
            assert record["KafkaBatchInfo"]["topic"] == topic
            assert [v for v in out.values() if v != "poison"] == [f"{mode}-a", f"{mode}-c"]
        assert "authentication failed" not in dev.output().lower()


async def test_refusals_are_reported_and_a_fixed_secret_delivers_every_record(
    project: Project, kafka: KafkaTools, kafka_service: Any, tmp_path: Path
) -> None:
    secured = kafka_service.secured
    ca = secret("kafka-ca", {"ca.crt": secured.ca_pem.decode()})
    foreign_ca = secret("foreign-ca", {"ca.crt": secured.untrusted_ca_pem.decode()})
    topic, group = kafka.topic(), unique("g-wrong")
    out = project.function("fixed")
    project.mapping("wrong", "fixed", kafka=source(secured, "scram-512", topic, group))
    untrusted_topic = kafka.topic()
    project.function("never")
    project.mapping(
        "untrusted",
        "never",
        kafka=source(secured, "tls", untrusted_topic, unique("g-ca"), ca="foreign-ca"),
    )
    # A destination refused for the same wrong password keeps its records: nothing is committed
    # past the one it could not take.
    source_topic, dlq, dlq_group = kafka.topic(), kafka.topic(), unique("g-dlq")
    project.function("dead-letters", mode="error_on_poison")
    project.mapping(
        "refused-destination",
        "dead-letters",
        kafka=plaintext(kafka, source_topic, dlq_group),
        batchSize=1,
        maximumRetryAttempts=0,
        destinationConfig={"onFailure": {"kafka": secured_destination(secured, dlq, "scram-512")}},
    )
    wrong = credentials(secured, "scram-512", password="not-the-password")
    project.documents += [ca, foreign_ca, wrong]
    values = [f"r{index}".encode() for index in range(5)]
    await kafka.produce(topic, values)
    await kafka.produce(source_topic, [b"d-a", b"poison", b"d-c"])
    state = tmp_path / "state"
    with dev_server([project.write()], env=FAST, args=["--state", str(state)]) as dev:

        async def refused(name: str) -> dict[str, Any] | None:
            condition = polling_condition(state, name)
            return condition if condition and condition["status"] == "False" else None

        condition = await eventually_async(
            lambda: refused("wrong"), within=60, what="Polling=False on the wrong password"
        )
        assert condition["reason"] == "AuthenticationFailed"
        assert (
            "SASL SCRAM-SHA-512 authentication failed for user 'kfaas-scram-512'"
            in condition["message"]
        )
        assert "not-the-password" not in condition["message"] + dev.output()
        # A Lambda client sees it as the mapping's LastProcessingResult, and kfaas dev folds it
        # into the mapping's Ready and State as the operator does in a cluster (ADR 032).
        lambda_client = make_lambda_client(dev.url)

        def shown_as(state_wanted: str) -> dict[str, Any] | None:
            (shown,) = lambda_client.list_event_source_mappings(FunctionName="fixed")[
                "EventSourceMappings"
            ]
            return dict(shown) if shown["State"] == state_wanted else None

        shown = await eventually_async(lambda: shown_as("Failed"), within=10, what="Failed")
        assert shown["LastProcessingResult"].startswith("PROBLEM: Authentication error: ")
        assert "SASL SCRAM-SHA-512 authentication failed" in shown["LastProcessingResult"]
        assert "SASL SCRAM-SHA-512 authentication failed" in shown["StateTransitionReason"]
        condition = await eventually_async(
            lambda: refused("untrusted"), within=60, what="Polling=False on the foreign CA"
        )
        assert "TLS: the broker's certificate is not trusted" in condition["message"]
        assert await kafka.committed(group, topic) == [None]
        assert out.values() == []
        await kafka.wait_committed(dlq_group, source_topic, [1], within=30)
        # The poison record is still not on its destination: nothing after it was committed.
        assert await kafka.committed(dlq_group, source_topic) == [1]
        assert "authentication failed" in dev.output().lower()
        # The Secret is fixed in the file: kfaas dev reloads it, the next attempt reads it.
        project.documents.remove(wrong)
        project.documents.append(credentials(secured, "scram-512"))
        project.write()
        await kafka.wait_committed(group, topic, [5], within=90)
        assert out.values() == [value.decode() for value in values]
        await kafka.wait_committed(dlq_group, source_topic, [3], within=60)
        copy, failure = await kafka.read(dlq, 2)
        assert copy.value == b"poison" and json.loads(failure.value)["KafkaBatchInfo"]

        async def polling() -> bool:
            condition = polling_condition(state, "wrong")
            return condition is not None and condition["status"] == "True"

        await eventually_async(polling, within=30, what="Polling=True once fixed")
        await eventually_async(lambda: shown_as("Enabled"), within=10, what="Enabled once fixed")


async def test_a_mapping_created_with_boto3_names_its_secrets_as_lambda_does(
    project: Project, kafka: KafkaTools, kafka_service: Any
) -> None:
    secured = kafka_service.secured
    project.documents.append(secret("kafka-ca", {"ca.crt": secured.ca_pem.decode()}))
    project.documents.append(credentials(secured, "scram-512"))
    out = project.function("created")
    topic = kafka.topic()
    await kafka.produce(topic, [b"x1", b"x2"])
    with dev_server([project.write()], env=FAST) as dev:
        client = make_lambda_client(dev.url)
        access = [
            {
                "Type": "SASL_SCRAM_512_AUTH",
                "URI": "arn:aws:secretsmanager:us-east-1:123456789012:secret:kafka-scram-512",
            },
            {"Type": "SERVER_ROOT_CA_CERTIFICATE", "URI": "kafka-ca"},
        ]
        created = client.create_event_source_mapping(
            FunctionName="created",
            SelfManagedEventSource={"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": [secured.sasl_ssl]}},
            Topics=[topic],
            StartingPosition="TRIM_HORIZON",
            SourceAccessConfigurations=access,
        )
        arn = "arn:aws:secretsmanager:us-east-1:default:secret:"
        assert created["SourceAccessConfigurations"] == [
            {"Type": "SASL_SCRAM_512_AUTH", "URI": arn + "kafka-scram-512"},
            {"Type": "SERVER_ROOT_CA_CERTIFICATE", "URI": arn + "kafka-ca"},
        ]
        assert await out.wait_values(2, within=60) == ["x1", "x2"]
