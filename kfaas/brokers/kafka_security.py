"""How kfaas's Kafka clients encrypt and authenticate: one value, built from Secrets, for all.

Every Kafka client kfaas opens — the pollers' consumers, the destination producers, the gateway's
async queue — takes a ``KafkaSecurity`` (ADR 027): TLS with the system's or a private CA, a client
certificate (mutual TLS), or SASL PLAIN / SCRAM-SHA-256 / SCRAM-SHA-512. ``client_options`` turns
it into aiokafka's options; ``security_from_secret_data`` builds it from a manifest's ``tls`` and
``auth`` and the Secrets' data, with the keys Kubernetes' own Secret types use:

    tls.caSecretRef      ca.crt                       the CA that signed the brokers' certificates
    BASIC_AUTH, SCRAM    username, password           (kubernetes.io/basic-auth)
    CLIENT_CERTIFICATE   tls.crt, tls.key             (kubernetes.io/tls), tls.key.password if
                                                      the key is encrypted

Credentials never reach a log: the value's ``repr`` names the protocol, mechanism and user only.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from kfaas.manifests import KafkaAuth, KafkaTls

from .errors import KafkaAuthError

SaslMechanism = Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"]

# Lambda's SourceAccessConfigurations types (the manifests' auth.mechanism) as Kafka names them;
# a client certificate is no SASL mechanism.
SASL_MECHANISMS: Final[dict[str, SaslMechanism | None]] = {
    "BASIC_AUTH": "PLAIN",
    "SASL_SCRAM_256_AUTH": "SCRAM-SHA-256",
    "SASL_SCRAM_512_AUTH": "SCRAM-SHA-512",
    "CLIENT_CERTIFICATE_TLS_AUTH": None,
}
CLIENT_CERTIFICATE: Final = "CLIENT_CERTIFICATE_TLS_AUTH"

CA_KEY: Final = "ca.crt"
USERNAME_KEY: Final = "username"
PASSWORD_KEY: Final = "password"
CERTIFICATE_KEY: Final = "tls.crt"
PRIVATE_KEY_KEY: Final = "tls.key"
KEY_PASSWORD_KEY: Final = "tls.key.password"


@dataclass(frozen=True, repr=False)
class KafkaSecurity:
    """How to reach one Kafka cluster. The default is PLAINTEXT, what kfaas did before."""

    tls: bool = False
    ca_pem: bytes | None = None
    """The CA the brokers' certificates must chain to; None: the system's CAs."""
    client_cert_pem: bytes | None = None
    client_key_pem: bytes | None = None
    client_key_password: str | None = None
    sasl_mechanism: SaslMechanism | None = None
    username: str | None = None
    password: str | None = None

    def __post_init__(self) -> None:
        if (self.client_cert_pem is None) != (self.client_key_pem is None):
            raise ValueError("a client certificate needs both the certificate and its key")
        if (self.client_cert_pem is not None or self.ca_pem is not None) and not self.tls:
            raise ValueError("a CA or a client certificate is only used with tls")
        if self.sasl_mechanism is not None:
            if not self.username or self.password is None:
                raise ValueError(f"SASL {self.sasl_mechanism} needs a username and a password")
            if self.sasl_mechanism == "PLAIN" and not self.tls:
                raise ValueError("SASL PLAIN sends the password as it is: it needs tls")
        elif self.username is not None or self.password is not None:
            raise ValueError("a username and password are only used with a SASL mechanism")

    @property
    def protocol(self) -> str:
        """Kafka's ``security.protocol``: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL."""
        if self.sasl_mechanism is None:
            return "SSL" if self.tls else "PLAINTEXT"
        return "SASL_SSL" if self.tls else "SASL_PLAINTEXT"

    def describe(self) -> str:
        """What this security is, safe to log: no password, key or certificate."""
        parts = []
        if self.sasl_mechanism is not None:
            parts.append(f"SASL {self.sasl_mechanism} as {self.username!r}")
        if self.client_cert_pem is not None:
            parts.append("client certificate")
        if self.tls:
            parts.append("private CA" if self.ca_pem is not None else "system CAs")
        return f"{self.protocol} ({', '.join(parts)})" if parts else self.protocol

    def __repr__(self) -> str:
        return f"KafkaSecurity({self.describe()})"


PLAINTEXT: Final = KafkaSecurity()


def ssl_context(security: KafkaSecurity) -> ssl.SSLContext:
    """A client context that checks the brokers' certificates and host names.

    Python loads a client certificate only from files, so the certificate and key are written to
    a private folder (0700, files 0600) just long enough to be loaded, then removed.
    """
    cadata = security.ca_pem.decode("ascii", "replace") if security.ca_pem is not None else None
    try:
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=cadata)
    except (ssl.SSLError, ValueError) as exc:
        raise KafkaAuthError(
            f"TLS: the CA certificate ({CA_KEY}) cannot be loaded: {exc}"
        ) from None
    if security.client_cert_pem is not None and security.client_key_pem is not None:
        with tempfile.TemporaryDirectory(prefix="kfaas-kafka-") as folder:
            cert, key = Path(folder, "tls.crt"), Path(folder, "tls.key")
            for path, data in ((cert, security.client_cert_pem), (key, security.client_key_pem)):
                descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(descriptor, "wb") as file:
                    file.write(data)
            try:
                # Never None: OpenSSL would then ask for an encrypted key's pass phrase on the
                # terminal; a callable answering "" makes it fail instead.
                context.load_cert_chain(cert, key, password=_key_password(security))
            except (OSError, ValueError) as exc:
                # The library's message names what is wrong, never the key's content.
                raise KafkaAuthError(
                    f"TLS: the client certificate ({CERTIFICATE_KEY}, {PRIVATE_KEY_KEY}) cannot "
                    f"be loaded: {exc}"
                ) from None
    return context


def _key_password(security: KafkaSecurity) -> Callable[[], str]:
    return lambda: security.client_key_password or ""


def client_options(security: KafkaSecurity | None) -> dict[str, Any]:
    """aiokafka's keyword arguments for ``security`` (none for PLAINTEXT, its default)."""
    if security is None or security == PLAINTEXT:
        return {}
    options: dict[str, Any] = {"security_protocol": security.protocol}
    if security.tls:
        options["ssl_context"] = ssl_context(security)
    if security.sasl_mechanism is not None:
        options["sasl_mechanism"] = security.sasl_mechanism
        options["sasl_plain_username"] = security.username
        options["sasl_plain_password"] = security.password
    return options


def _text(data: Mapping[str, bytes], key: str, secret: str) -> str:
    try:
        return data[key].decode("utf-8")
    except UnicodeDecodeError:
        raise KafkaAuthError(f"Secret {secret!r}: key {key!r} is not UTF-8 text") from None


def _required(data: Mapping[str, bytes], key: str, secret: str, why: str) -> bytes:
    if key not in data:
        raise KafkaAuthError(f"Secret {secret!r} has no key {key!r} ({why})")
    return data[key]


def security_from_secret_data(
    mechanism: str | None,
    tls: bool,
    auth_data: Mapping[str, bytes] | None,
    ca_data: Mapping[str, bytes] | None,
    *,
    auth_secret: str = "",
    ca_secret: str = "",
) -> KafkaSecurity:
    """The security a manifest's ``tls``/``auth`` asks for, given its Secrets' data.

    ``mechanism`` is the manifest's ``auth.mechanism`` (None: no auth); ``auth_secret`` and
    ``ca_secret`` name the Secrets for the messages. A missing key raises ``KafkaAuthError``
    naming the Secret and the key.
    """
    ca_pem = None
    if ca_data is not None:
        ca_pem = _required(ca_data, CA_KEY, ca_secret, "the CA certificate of tls.caSecretRef")
    if mechanism is None:
        return KafkaSecurity(tls=tls, ca_pem=ca_pem)
    if mechanism not in SASL_MECHANISMS:
        raise KafkaAuthError(f"auth.mechanism {mechanism!r} is not one kfaas knows")
    data = auth_data or {}
    if mechanism == CLIENT_CERTIFICATE:
        why = f"auth.mechanism {mechanism}: a kubernetes.io/tls Secret"
        cert = _required(data, CERTIFICATE_KEY, auth_secret, why)
        key = _required(data, PRIVATE_KEY_KEY, auth_secret, why)
        password = _text(data, KEY_PASSWORD_KEY, auth_secret) if KEY_PASSWORD_KEY in data else None
        try:
            return KafkaSecurity(
                tls=tls,
                ca_pem=ca_pem,
                client_cert_pem=cert,
                client_key_pem=key,
                client_key_password=password,
            )
        except ValueError as exc:  # no tls (the manifests' rules refuse it before)
            raise KafkaAuthError(f"auth.mechanism {mechanism}: {exc}") from None
    why = f"auth.mechanism {mechanism}"
    _required(data, USERNAME_KEY, auth_secret, why)
    _required(data, PASSWORD_KEY, auth_secret, why)
    try:
        return KafkaSecurity(
            tls=tls,
            ca_pem=ca_pem,
            sasl_mechanism=SASL_MECHANISMS[mechanism],
            username=_text(data, USERNAME_KEY, auth_secret),
            password=_text(data, PASSWORD_KEY, auth_secret),
        )
    except ValueError as exc:  # an empty username
        raise KafkaAuthError(f"Secret {auth_secret!r}: {exc}") from None


# Reads one Secret of the object's namespace by name: its data, or None if there is none.
SecretReader = Callable[[str], Awaitable[Mapping[str, bytes] | None]]


async def resolve_security(
    tls: KafkaTls | None, auth: KafkaAuth | None, read_secret: SecretReader | None
) -> KafkaSecurity | None:
    """The security of a manifest's Kafka ``tls``/``auth``, its Secrets read now (None: none).

    Callers resolve again at every (re)connect, so a Secret fixed after a failure is picked up
    without a restart. A Secret that does not exist raises ``KafkaAuthError`` naming it.
    """
    if tls is None and auth is None:
        return None

    async def read(name: str, why: str) -> Mapping[str, bytes]:
        data = await read_secret(name) if read_secret is not None else None
        if data is None:
            raise KafkaAuthError(f"Secret {name!r} ({why}) does not exist")
        return data

    ca_name = tls.ca_secret_ref.name if tls is not None and tls.ca_secret_ref else None
    ca_data = await read(ca_name, "tls.caSecretRef") if ca_name else None
    auth_data = await read(auth.secret_ref.name, "auth.secretRef") if auth is not None else None
    return security_from_secret_data(
        auth.mechanism if auth is not None else None,
        tls is not None,
        auth_data,
        ca_data,
        auth_secret=auth.secret_ref.name if auth is not None else "",
        ca_secret=ca_name or "",
    )
