"""The pollers' own errors, beside the broker vocabulary they share with the gateway.

Kafka and Redis failures arrive as `kfaas.brokers.errors` exceptions (ADR 019): a `BrokerError`
from the source means reconnect and retry, a `DestinationError` means the on-failure destination
did not take the records (they are kept and the send retried). The errors here say what else the
poller should do next.
"""

from __future__ import annotations


class PollerError(Exception):
    """Base of the errors a poller handles."""


class MappingError(PollerError):
    """The mapping cannot run as written (bad filter, missing settings); the poller exits."""


class StatusError(PollerError):
    """The mapping's status could not be read or written; the next report tries again."""

    def __init__(self, message: str, *, conflict: bool = False) -> None:
        super().__init__(message)
        # Someone else wrote the status in between: read it again and redo the change.
        self.conflict = conflict
