"""The pollers' own error vocabulary: client errors are translated into these at the boundary.

Only `*_clients` modules know aiokafka's and redis-py's exceptions; everything above them handles
these few, each saying what the poller should do next.
"""

from __future__ import annotations


class PollerError(Exception):
    """Base of the errors a poller handles."""


class MappingError(PollerError):
    """The mapping cannot run as written (bad filter, missing settings); the poller exits."""


class SourceError(PollerError):
    """Kafka or Redis could not be read from or committed to; the poller reconnects and retries."""


class CommitError(SourceError):
    """An offset commit was refused (e.g. the partition moved to another consumer)."""


class DestinationError(PollerError):
    """The on-failure destination did not take the records; they are kept and the send retried."""


class StatusError(PollerError):
    """The mapping's status could not be read or written; the next report tries again."""

    def __init__(self, message: str, *, conflict: bool = False) -> None:
        super().__init__(message)
        # Someone else wrote the status in between: read it again and redo the change.
        self.conflict = conflict
