"""The platform's own Kafka security as every platform client takes it (ADR 027, "Platform Kafka").

``kfaas.kafka_settings`` reads the `KFAAS_KAFKA_*` variables and their files; here they become the
``KafkaSecurity`` the gateway's Kafka async queue, the destinations without `bootstrapServers`
and the scheduler's dead letters open their clients with. ``check_platform_security`` loads the
certificates once at start, so a CA or key that is no PEM stops the process with a message
instead of failing every later connection.
"""

from __future__ import annotations

from typing import cast

from kfaas.kafka_settings import PlatformKafkaSecurity

from .errors import KafkaAuthError
from .kafka_security import KafkaSecurity, SaslMechanism, ssl_context


def platform_security(settings: PlatformKafkaSecurity) -> KafkaSecurity | None:
    """The security of the platform's Kafka; None: PLAINTEXT (no `KFAAS_KAFKA_*` set)."""
    if settings == PlatformKafkaSecurity():
        return None
    return KafkaSecurity(
        tls=settings.tls,
        ca_pem=settings.ca_pem,
        client_cert_pem=settings.client_cert_pem,
        client_key_pem=settings.client_key_pem,
        # Checked against kafka_settings.SASL_MECHANISMS, the same three names.
        sasl_mechanism=cast(SaslMechanism | None, settings.sasl_mechanism),
        username=settings.username,
        password=settings.password,
    )


def check_platform_security(settings: PlatformKafkaSecurity) -> None:
    """ValueError naming the variables when the CA or client certificate cannot be used."""
    try:
        security = platform_security(settings)
        if security is not None and security.tls:
            ssl_context(security)
    except KafkaAuthError as exc:
        raise ValueError(
            f"the platform's Kafka (KFAAS_KAFKA_CA_FILE, KFAAS_KAFKA_CERT_FILE, "
            f"KFAAS_KAFKA_KEY_FILE): {exc}"
        ) from None
    except ValueError as exc:  # KafkaSecurity's own rules, which from_env already applies
        raise ValueError(f"the platform's Kafka (KFAAS_KAFKA_*): {exc}") from None
