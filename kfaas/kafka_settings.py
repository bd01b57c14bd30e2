"""The platform's own Kafka security, read once from `KFAAS_KAFKA_*` variables (ADR 027).

The gateway's Kafka async queue and the destinations that name no `bootstrapServers` of their own
write to the platform's Kafka. A company cluster wants TLS with a private CA, a client certificate
or SASL credentials; a function's manifest names Secrets for its own clusters, while the
platform's credentials come from its deployment: the chart mounts them as files and points these
variables at them. No credential is ever a command-line flag (a process list shows flags to every
user of the machine).

    KFAAS_KAFKA_TLS            true: encrypt; the brokers' certificates are checked
    KFAAS_KAFKA_CA_FILE        PEM CA the brokers' certificates chain to (default: system CAs)
    KFAAS_KAFKA_CERT_FILE      PEM client certificate (mutual TLS), with KFAAS_KAFKA_KEY_FILE
    KFAAS_KAFKA_KEY_FILE       its unencrypted PEM private key
    KFAAS_KAFKA_SASL_MECHANISM PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    KFAAS_KAFKA_USERNAME       the SASL user
    KFAAS_KAFKA_PASSWORD       its password, or KFAAS_KAFKA_PASSWORD_FILE: a file holding it

The files are read here, at start, so a missing or unreadable one stops the process with one line
naming its variable instead of failing at the first event; a rotated certificate takes effect at
the next restart. Inconsistent combinations (a CA without TLS, a certificate without its key,
PLAIN without TLS, a password without a mechanism) are refused the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

SASL_MECHANISMS: Final = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")
_TRUE: Final = ("true", "1", "yes")
_FALSE: Final = ("false", "0", "no", "")


@dataclass(frozen=True)
class PlatformKafkaSecurity:
    """What the `KFAAS_KAFKA_*` variables ask for, files read; the default is PLAINTEXT."""

    tls: bool = False
    ca_pem: bytes | None = field(default=None, repr=False)
    client_cert_pem: bytes | None = field(default=None, repr=False)
    client_key_pem: bytes | None = field(default=None, repr=False)
    sasl_mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PlatformKafkaSecurity:
        """Read and check the variables; ValueError names the variable and what is wrong."""
        raw_tls = environ.get("KFAAS_KAFKA_TLS", "").strip().lower()
        if raw_tls not in _TRUE + _FALSE:
            raise ValueError(
                f"KFAAS_KAFKA_TLS={environ['KFAAS_KAFKA_TLS']!r} must be true or false"
            )
        tls = raw_tls in _TRUE
        ca = _file(environ, "KFAAS_KAFKA_CA_FILE")
        cert = _file(environ, "KFAAS_KAFKA_CERT_FILE")
        key = _file(environ, "KFAAS_KAFKA_KEY_FILE")
        if not tls:
            for variable, value in (("KFAAS_KAFKA_CA_FILE", ca), ("KFAAS_KAFKA_CERT_FILE", cert)):
                if value is not None:
                    raise ValueError(f"{variable} is only used over TLS: set KFAAS_KAFKA_TLS=true")
        if (cert is None) != (key is None):
            raise ValueError(
                "KFAAS_KAFKA_CERT_FILE and KFAAS_KAFKA_KEY_FILE go together: a client "
                "certificate needs its private key"
            )
        mechanism = environ.get("KFAAS_KAFKA_SASL_MECHANISM", "").strip() or None
        username = environ.get("KFAAS_KAFKA_USERNAME", "").strip() or None
        password = _password(environ)
        if mechanism is None:
            if username is not None or password is not None:
                raise ValueError(
                    "KFAAS_KAFKA_USERNAME and KFAAS_KAFKA_PASSWORD are only used with "
                    f"KFAAS_KAFKA_SASL_MECHANISM ({', '.join(SASL_MECHANISMS)})"
                )
        else:
            if mechanism not in SASL_MECHANISMS:
                raise ValueError(
                    f"KFAAS_KAFKA_SASL_MECHANISM={mechanism!r} must be one of "
                    f"{', '.join(SASL_MECHANISMS)}"
                )
            if username is None or password is None:
                raise ValueError(
                    f"KFAAS_KAFKA_SASL_MECHANISM={mechanism} needs KFAAS_KAFKA_USERNAME and "
                    "KFAAS_KAFKA_PASSWORD (or KFAAS_KAFKA_PASSWORD_FILE)"
                )
            if mechanism == "PLAIN" and not tls:
                raise ValueError(
                    "KFAAS_KAFKA_SASL_MECHANISM=PLAIN sends the password as it is: "
                    "set KFAAS_KAFKA_TLS=true"
                )
        return cls(
            tls=tls,
            ca_pem=ca,
            client_cert_pem=cert,
            client_key_pem=key,
            sasl_mechanism=mechanism,
            username=username,
            password=password,
        )


def _file(environ: Mapping[str, str], variable: str) -> bytes | None:
    path = environ.get(variable, "").strip()
    if not path:
        return None
    try:
        content = Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{variable}={path!r} cannot be read: {exc.strerror or exc}") from None
    if not content.strip():
        raise ValueError(f"{variable}={path!r} is empty")
    return content


def _password(environ: Mapping[str, str]) -> str | None:
    inline = environ.get("KFAAS_KAFKA_PASSWORD")
    from_file = _file(environ, "KFAAS_KAFKA_PASSWORD_FILE")
    if inline and from_file is not None:
        raise ValueError("set KFAAS_KAFKA_PASSWORD or KFAAS_KAFKA_PASSWORD_FILE, not both")
    if from_file is not None:
        try:
            # A mounted Secret file may end with a newline the password does not have.
            return from_file.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            raise ValueError("KFAAS_KAFKA_PASSWORD_FILE is not UTF-8 text") from None
    return inline or None
