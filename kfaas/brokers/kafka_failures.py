"""Why a secured Kafka connection failed, said in words (ADR 027).

aiokafka's bootstrap logs the cause of a refused connection and raises only "Unable to bootstrap
from ...", so a wrong password, a CA that does not trust the broker and a missing client
certificate all looked like a broker that is down. ``start_explained`` starts a client and, when
a secured one cannot connect, ``probe``s one connection to the first bootstrap server with the
same security; ``explain_failure`` turns what that raised into a ``KafkaAuthError`` whose message
says what failed and names the user or the CA, never a password. A broker that is simply out of
reach stays ``BrokerUnavailable``.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable

from aiokafka.conn import collect_hosts, create_conn
from aiokafka.errors import (
    IllegalSaslStateError,
    KafkaConnectionError,
    KafkaError,
    SaslAuthenticationFailed,
    UnsupportedSaslMechanismError,
)

from .errors import BrokerUnavailable, KafkaAuthError, kafka_errors
from .kafka_security import CA_KEY, PLAINTEXT, KafkaSecurity, client_options


def explain_failure(exc: BaseException, security: KafkaSecurity) -> KafkaAuthError | None:
    """What failed, when a connection with ``security`` raised ``exc`` for a security reason.

    aiokafka's bootstrap swallows the cause of a failed connection ("Unable to bootstrap"), so
    the clients probe one connection and ask this function about what it raised. None: not a
    security failure (a broker down, a refused port), which the caller treats as unavailable.
    """
    if isinstance(exc, SaslAuthenticationFailed):
        return KafkaAuthError(
            f"SASL {security.sasl_mechanism} authentication failed for user "
            f"{security.username!r}: {exc}"
        )
    if isinstance(exc, UnsupportedSaslMechanismError | IllegalSaslStateError):
        return KafkaAuthError(f"SASL {security.sasl_mechanism}: the broker refused it: {exc}")
    if isinstance(exc, ssl.SSLCertVerificationError):
        where = f"the CA in {CA_KEY}" if security.ca_pem is not None else "the system's CAs"
        return KafkaAuthError(
            f"TLS: the broker's certificate is not trusted ({exc.verify_message}; checked "
            f"against {where})"
        )
    if isinstance(exc, ssl.SSLError):
        # reason is OpenSSL's code for the failure (TLSV13_ALERT_CERTIFICATE_REQUIRED, ...).
        reason = exc.reason or str(exc)
        hint = ""
        if "CERTIFICATE" in reason and security.client_cert_pem is None:
            hint = ": the broker asks for a client certificate (CLIENT_CERTIFICATE_TLS_AUTH)"
        elif "CERTIFICATE" in reason:
            hint = ": the broker refused the client certificate"
        elif "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason:
            hint = ": the listener does not speak TLS"
        return KafkaAuthError(f"TLS handshake with the broker failed ({reason}){hint}")
    if security.tls and isinstance(
        exc, KafkaConnectionError | ConnectionResetError | asyncio.IncompleteReadError
    ):
        # A TLS 1.3 server checks the client's certificate after the client thinks the handshake
        # is over, and then closes the connection: the first request finds it gone.
        hint = (
            "the broker may require a client certificate (CLIENT_CERTIFICATE_TLS_AUTH)"
            if security.client_cert_pem is None
            else "the broker may not accept the client certificate"
        )
        return KafkaAuthError(f"TLS: the broker closed the connection after the handshake; {hint}")
    return None


# A probe of a connection that failed gets this long; a hung broker is not a security failure.
_PROBE_MS = 5000


async def probe(bootstrap_servers: str, security: KafkaSecurity) -> KafkaAuthError | None:
    """Why the first bootstrap server refuses a connection with ``security``, if for security."""
    hosts = collect_hosts(bootstrap_servers, randomize=False)
    if not hosts:
        return None
    host, port, _ = hosts[0]
    try:
        connection = await create_conn(
            host, port, request_timeout_ms=_PROBE_MS, **client_options(security)
        )
    except KafkaAuthError as exc:
        return exc
    except (TimeoutError, KafkaError, OSError, asyncio.IncompleteReadError) as exc:
        return explain_failure(exc, security)
    connection.close()
    return None


async def start_explained(
    what: str,
    bootstrap_servers: str,
    security: KafkaSecurity | None,
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
) -> None:
    """Run ``start`` with errors translated; a secured cluster unreachable is probed for why.

    A client that failed to start is stopped (it holds a half-open client otherwise).
    """
    try:
        with kafka_errors(what):
            try:
                await start()
            except BaseException:
                with contextlib.suppress(KafkaError, OSError):
                    await stop()
                raise
    except BrokerUnavailable as exc:
        if security is None or security == PLAINTEXT:
            raise
        failure = await probe(bootstrap_servers, security)
        if failure is None:
            raise
        raise KafkaAuthError(f"kafka: {what} at {bootstrap_servers}: {failure}") from exc
