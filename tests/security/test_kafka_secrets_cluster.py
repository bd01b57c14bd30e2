"""The gateway reads a Kafka destination's Secrets from the real apiserver (ADR 027).

``KubernetesKeySources.secret_reader`` gives a destination's ``tls``/``auth`` Secrets as bytes
(a PEM is bytes, and a key need not be UTF-8 text), None for a Secret that does not exist (so the
message names it), and, where the namespace did not bind the gateway's Secret-reading ClusterRole,
an error saying which role to bind — not a silent PLAINTEXT connection.
"""

from __future__ import annotations

import base64
import ssl
import uuid
from collections.abc import Iterator

import pytest
from services.cluster import Cluster

from kfaas.brokers.errors import KafkaAuthError
from kfaas.brokers.kafka_security import resolve_security
from kfaas.gateway.kube_clients import KubernetesKeySources
from kfaas.kube_clients import Credentials, KubeClient
from kfaas.manifests import KafkaAuth, KafkaTls, SecretName

CA = b"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"


@pytest.fixture
def namespace(kwok_service: Cluster) -> Iterator[str]:
    name = f"kafka-secrets-{uuid.uuid4().hex[:6]}"
    kwok_service.kubectl("create", "namespace", name)
    yield name
    kwok_service.kubectl("delete", "namespace", name, "--wait=false")


async def test_secrets_are_read_as_bytes_and_a_missing_one_is_none(
    kwok_service: Cluster, namespace: str
) -> None:
    binary = bytes(range(256))
    kwok_service.kubectl(
        "-n", namespace, "create", "secret", "generic", "kafka-user",
        "--from-literal=username=kfaas", "--from-literal=password=s3cret",
    )  # fmt: skip
    kwok_service.kubectl(
        "-n", namespace, "apply", "-f", "-",
        input=(
            "apiVersion: v1\nkind: Secret\nmetadata: {name: kafka-ca}\n"
            f"data: {{ca.crt: {base64.b64encode(CA).decode()}, "
            f"other: {base64.b64encode(binary).decode()}}}\n"
        ),
    )  # fmt: skip
    credentials = Credentials.load(str(kwok_service.kubeconfig))
    async with KubeClient(credentials, field_manager="kfaas-test") as client:
        read = KubernetesKeySources(client).secret_reader(namespace)
        assert await read("kafka-ca") == {"ca.crt": CA, "other": binary}
        assert await read("nope") is None
        security = await resolve_security(
            KafkaTls(ca_secret_ref=SecretName(name="kafka-ca")),
            KafkaAuth(mechanism="SASL_SCRAM_512_AUTH", secret_ref=SecretName(name="kafka-user")),
            read,
        )
        assert security is not None
        assert (security.protocol, security.username, security.password) == (
            "SASL_SSL",
            "kfaas",
            "s3cret",
        )
        assert security.ca_pem == CA
        with pytest.raises(KafkaAuthError, match=r"Secret 'nope' .* does not exist"):
            await resolve_security(
                None,
                KafkaAuth(mechanism="SASL_SCRAM_256_AUTH", secret_ref=SecretName(name="nope")),
                read,
            )


async def test_a_namespace_that_granted_nothing_says_which_role_to_bind(
    kwok_service: Cluster, namespace: str
) -> None:
    kwok_service.kubectl("-n", namespace, "create", "serviceaccount", "gateway")
    kwok_service.kubectl(
        "-n", namespace, "create", "secret", "generic", "kafka-user", "--from-literal=username=u"
    )
    token = kwok_service.kubectl("-n", namespace, "create", "token", "gateway").stdout.strip()
    context = ssl.create_default_context(cafile=str(kwok_service.pki.ca_cert))
    credentials = Credentials(kwok_service.server, context, lambda: f"Bearer {token}")
    async with KubeClient(credentials, field_manager="kfaas-test") as client:
        read = KubernetesKeySources(client).secret_reader(namespace)
        with pytest.raises(KafkaAuthError, match="gateway-trigger-keys ClusterRole"):
            await read("kafka-user")
