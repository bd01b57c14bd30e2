"""The test broker's secured listeners: server TLS, mutual TLS and SASL_SSL, and what clients need.

Production Kafka (MSK, Confluent, Strimzi) is reached over TLS with a private CA, often with a
client certificate or SASL/PLAIN or SCRAM credentials (issue 12, ADR 027). So the one real broker
listens, besides PLAINTEXT (inter-broker traffic stays there), on

- `SSL`: server TLS only; the client checks the broker against the test CA;
- `MTLS`: TLS that requires a client certificate signed by the test CA;
- `SASL_SSL`: TLS plus SASL with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512, one user per mechanism;
- `PODS_SASL_SSL`, only on the broker pods reach (`pod_kafka_service`): SASL_SSL with SCRAM-SHA-512
  on the real node's bridge address, so poller pods authenticate with Secrets a kubelet mounted
  (ADR 027); its certificate names the bridge address, which clients check like a host name.

The certificates are made with openssl once per state folder (EC P-256 keys, PKCS#8 PEM, which
Kafka reads as `ssl.keystore.type=PEM`, so no keytool). A second CA that the broker does not trust
signs an "untrusted" client certificate, and doubles as a CA that does not trust the broker, for
tests of refusals. SCRAM users are written by Kafka's own StorageTool when the data folder is
formatted (`--add-scram`); PLAIN users live in the listener's JAAS line.
"""

from __future__ import annotations

import secrets
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.base import LOOPBACK, MissingDependency, ServiceError

# Secured listener → port name in ports.json.
LISTENERS = {"SSL": "ssl", "MTLS": "mtls", "SASL_SSL": "sasl_ssl"}
PROTOCOLS = {"SSL": "SSL", "MTLS": "SSL", "SASL_SSL": "SASL_SSL"}
# The pod-reachable secured listener: one mechanism is enough to prove the mounted Secrets work.
POD_LISTENER, POD_PORT, POD_MECHANISM = "PODS_SASL_SSL", "pods_sasl_ssl", "SCRAM-SHA-512"

# One user per mechanism, so a client that picked the wrong mechanism is refused. Test-only
# credentials of a broker that listens on loopback; printed by `scripts/services up kafka`.
USERS: Mapping[str, tuple[str, str]] = {
    "PLAIN": ("kfaas-plain", "plain-password"),
    "SCRAM-SHA-256": ("kfaas-scram-256", "scram-256-password"),
    "SCRAM-SHA-512": ("kfaas-scram-512", "scram-512-password"),
}
SCRAM = ("SCRAM-SHA-256", "SCRAM-SHA-512")
DAYS = "3650"

# Kept beside the data: a data folder formatted without these users (before the secured
# listeners existed) is re-formatted, since SCRAM users are only written at format time.
USERS_MARKER = "kfaas-scram-users"


@dataclass(frozen=True)
class SecuredListeners:
    """What a test needs to reach the broker's secured listeners (`kafka_service.secured`)."""

    ssl: str  # bootstrap servers of the server-TLS listener
    mtls: str  # bootstrap servers of the listener that requires a client certificate
    sasl_ssl: str  # bootstrap servers of SASL over TLS (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)
    ca_file: Path  # the CA that signed the broker's and the client's certificates
    client_cert_file: Path
    client_key_file: Path
    # Signed by another CA, which the broker does not trust; that CA does not trust the broker.
    untrusted_ca_file: Path
    untrusted_client_cert_file: Path
    untrusted_client_key_file: Path
    users: Mapping[str, tuple[str, str]]  # mechanism → (username, password)

    @property
    def ca_pem(self) -> bytes:
        return self.ca_file.read_bytes()

    @property
    def client_cert_pem(self) -> bytes:
        return self.client_cert_file.read_bytes()

    @property
    def client_key_pem(self) -> bytes:
        return self.client_key_file.read_bytes()

    @property
    def untrusted_ca_pem(self) -> bytes:
        return self.untrusted_ca_file.read_bytes()

    @property
    def untrusted_client_cert_pem(self) -> bytes:
        return self.untrusted_client_cert_file.read_bytes()

    @property
    def untrusted_client_key_pem(self) -> bytes:
        return self.untrusted_client_key_file.read_bytes()

    def sasl_client(self, mechanism: str) -> dict[str, Any]:
        """Keyword arguments of kfaas' ``KafkaSecurity`` for a client of the SASL_SSL listener as
        ``mechanism``'s user (the services package imports nothing of kfaas)."""
        username, password = self.users[mechanism]
        return {
            "tls": True,
            "ca_pem": self.ca_pem,
            "sasl_mechanism": mechanism,
            "username": username,
            "password": password,
        }

    def environment(self) -> dict[str, str]:
        """The `export` lines of `scripts/services up kafka` for the secured listeners."""
        exports = {
            "KAFKA_SSL_BOOTSTRAP_SERVERS": self.ssl,
            "KAFKA_MTLS_BOOTSTRAP_SERVERS": self.mtls,
            "KAFKA_SASL_SSL_BOOTSTRAP_SERVERS": self.sasl_ssl,
            "KAFKA_CA_FILE": str(self.ca_file),
            "KAFKA_CLIENT_CERT_FILE": str(self.client_cert_file),
            "KAFKA_CLIENT_KEY_FILE": str(self.client_key_file),
        }
        for mechanism, (username, password) in self.users.items():
            prefix = "KAFKA_" + mechanism.replace("-SHA-", "_").replace("-", "_")
            exports[f"{prefix}_USERNAME"] = username
            exports[f"{prefix}_PASSWORD"] = password
        return exports


def secured_listeners(tls_dir: Path, ports: Mapping[str, int]) -> SecuredListeners:
    if any(port not in ports for port in LISTENERS.values()):
        raise ServiceError("kafka was not started with its secured listeners yet")
    return SecuredListeners(
        ssl=f"{LOOPBACK}:{ports['ssl']}",
        mtls=f"{LOOPBACK}:{ports['mtls']}",
        sasl_ssl=f"{LOOPBACK}:{ports['sasl_ssl']}",
        ca_file=tls_dir / "ca.crt",
        client_cert_file=tls_dir / "client.crt",
        client_key_file=tls_dir / "client.key",
        untrusted_ca_file=tls_dir / "untrusted-ca.crt",
        untrusted_client_cert_file=tls_dir / "untrusted-client.crt",
        untrusted_client_key_file=tls_dir / "untrusted-client.key",
        users=USERS,
    )


def listener_settings(tls_dir: Path, *, pods: bool = False) -> dict[str, str]:
    """server.properties lines of the secured listeners (listeners themselves: `listeners()`),
    with `pods` those of the pod-reachable SASL_SSL listener too."""
    plain_user, plain_password = USERS["PLAIN"]
    settings = {
        # A PEM keystore: the key (PKCS#8, unencrypted) followed by the certificate.
        "ssl.keystore.type": "PEM",
        "ssl.keystore.location": str(tls_dir / "server.pem"),
        "ssl.truststore.type": "PEM",
        "ssl.truststore.location": str(tls_dir / "ca.crt"),
        "listener.name.mtls.ssl.client.auth": "required",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms": ",".join(USERS),
        "listener.name.sasl_ssl.plain.sasl.jaas.config": (
            "org.apache.kafka.common.security.plain.PlainLoginModule required "
            f'user_{plain_user}="{plain_password}";'
        ),
    }
    for mechanism in SCRAM:
        # The credentials themselves are in the cluster metadata (StorageTool --add-scram).
        settings[f"listener.name.sasl_ssl.{mechanism.lower()}.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        )
    if pods:
        pod_listener = POD_LISTENER.lower()
        settings[f"listener.name.{pod_listener}.sasl.enabled.mechanisms"] = POD_MECHANISM
        settings[f"listener.name.{pod_listener}.{POD_MECHANISM.lower()}.sasl.jaas.config"] = (
            "org.apache.kafka.common.security.scram.ScramLoginModule required;"
        )
    return settings


def listeners(ports: Mapping[str, int]) -> list[tuple[str, str]]:
    """(listener, host:port) of each secured listener."""
    return [(name, f"{LOOPBACK}:{ports[port]}") for name, port in LISTENERS.items()]


def scram_arguments() -> list[str]:
    """StorageTool format's arguments that create the SCRAM users."""
    arguments: list[str] = []
    for mechanism in SCRAM:
        username, password = USERS[mechanism]
        arguments += ["--add-scram", f"{mechanism}=[name={username},password={password}]"]
    return arguments


def users_marker_text() -> str:
    return "".join(f"{mechanism} {USERS[mechanism][0]}\n" for mechanism in SCRAM)


# -- certificates ------------------------------------------------------------------------------

_OPENSSL_CONFIG = """\
[req]
distinguished_name = dn
prompt = no
[dn]
CN = kfaas
[ca]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1,DNS:localhost{extra_names}
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
[client]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid,issuer
"""


def _complete_text(addresses: tuple[str, ...]) -> str:
    # The broker certificate's extra addresses are part of the marker: a folder made for other
    # addresses (or before pods had a secured listener) is made again. Without extra addresses
    # the text is what it always was, so the loopback broker's certificates are kept.
    return "made by tests/services/kafka_listeners.py\n" + "".join(
        f"subjectAltName IP:{address}\n" for address in addresses
    )


def make_certificates(tls_dir: Path, addresses: tuple[str, ...] = ()) -> None:
    """Create the CAs, the broker's and the clients' certificates once; later starts reuse them.

    `addresses`: IP addresses the broker's certificate is valid for besides 127.0.0.1 (the
    bridge address of the pods' listener).
    """
    complete = tls_dir / ".complete"
    if complete.exists() and complete.read_text() == _complete_text(addresses):
        return
    openssl = shutil.which("openssl")
    if openssl is None:
        raise MissingDependency("openssl is not installed (it makes the Kafka test certificates)")
    partial = tls_dir.with_name(tls_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    config = partial / "openssl.cnf"
    extra_names = "".join(f",IP:{address}" for address in addresses)
    config.write_text(_OPENSSL_CONFIG.format(extra_names=extra_names))

    def run(*args: str) -> None:
        done = subprocess.run([openssl, *args], capture_output=True, text=True, cwd=partial)
        if done.returncode != 0:
            raise ServiceError(f"openssl {args[0]} failed:\n{done.stdout}{done.stderr}")

    new_key = ("-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes")

    def authority(name: str, subject: str) -> None:
        run(
            *("req", "-x509", "-config", str(config), "-extensions", "ca", *new_key),
            *("-keyout", f"{name}.key", "-out", f"{name}.crt", "-days", DAYS, "-subj", subject),
        )

    def signed(name: str, subject: str, ca: str, extensions: str) -> None:
        run(
            *("req", "-new", "-config", str(config), *new_key, "-subj", subject),
            *("-keyout", f"{name}.key", "-out", f"{name}.csr"),
        )
        run(
            *("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key"),
            *("-set_serial", f"0x{secrets.token_hex(16)}", "-days", DAYS, "-out", f"{name}.crt"),
            *("-extfile", str(config), "-extensions", extensions),
        )
        (partial / f"{name}.csr").unlink()

    authority("ca", "/CN=kfaas test CA")
    signed("server", "/CN=127.0.0.1", "ca", "server")
    signed("client", "/CN=kfaas-client", "ca", "client")
    authority("untrusted-ca", "/CN=kfaas untrusted test CA")
    signed("untrusted-client", "/CN=kfaas-untrusted-client", "untrusted-ca", "client")
    # Kafka's PEM keystore file: the private key, then the certificate chain.
    (partial / "server.pem").write_bytes(
        (partial / "server.key").read_bytes() + (partial / "server.crt").read_bytes()
    )
    for key in partial.glob("*.key"):
        key.chmod(0o600)
    (partial / ".complete").write_text(_complete_text(addresses))
    shutil.rmtree(tls_dir, ignore_errors=True)
    partial.rename(tls_dir)
