"""Writing a Schedule's status as one replica among several: claims and preconditions (ADR 026).

Every status write of the scheduler names the resourceVersion it was computed from, so a write
made from a stale read is refused (``Conflict``) instead of overwriting another replica's. What
follows a refusal depends on what the writer holds: a replica that holds the claim on a tick
re-reads and writes again if the claim is still its own (a spec edit moves the resourceVersion
too), and learns it lost the tick otherwise (``ClaimLost``); any other writer decides again from
the fresh read (``Stale``). A claim is renewed while its holder waits between retries, so it only
lapses when the holder is gone or cut off.
"""

from __future__ import annotations

import asyncio
import datetime
import functools
from collections.abc import Callable
from typing import Any

from kfaas import aiokit
from kfaas.object_store import SCHEDULES, Body, Conflict, ObjectStore, StoreUnavailable
from kfaas.schedule_manifests import ScheduleStatus

from .ticks import claim_status, holds_claim

Clock = Callable[[], datetime.datetime]


class Stale(Exception):
    """The Schedule changed under a write: decide again from ``body`` (the fresh read)."""

    def __init__(self, body: Body) -> None:
        super().__init__("the schedule changed since it was read")
        self.body = body


class ClaimLost(Stale):
    """Another replica took the tick over (this one was silent past its claim's lease)."""


def status_of(body: Body) -> ScheduleStatus:
    """The scheduler's status of ``body``; ``ValueError`` (pydantic's) if it does not parse."""
    return ScheduleStatus.model_validate(body.get("status") or {}, by_alias=True)


class ClaimWriter:
    """Status writes of the replica ``replica``, each with the read resourceVersion."""

    def __init__(
        self, objects: ObjectStore, *, replica: str, claim_seconds: float, clock: Clock
    ) -> None:
        self.objects = objects
        self.replica = replica
        self.claim_seconds = claim_seconds
        self.clock = clock

    def claim(self, tick: datetime.datetime, attempts: int) -> dict[str, Any]:
        """The status that claims (or renews the claim on) ``tick`` for one lease from now."""
        expires = self.clock() + datetime.timedelta(seconds=self.claim_seconds)
        return claim_status(tick, self.replica, expires, attempts)

    async def pause(
        self, body: Body, tick: datetime.datetime, attempts: int, seconds: float
    ) -> Body:
        """Sleep ``seconds``, renewing the claim on ``tick`` often enough that it never lapses."""
        loop = asyncio.get_running_loop()
        end = loop.time() + seconds
        while (left := end - loop.time()) > 0:
            await asyncio.sleep(min(left, self.claim_seconds / 3))
            if end - loop.time() > 0:
                body = await self.write(body, self.claim(tick, attempts), keep=tick)
        return body

    async def write(
        self, body: Body, status: dict[str, Any], *, keep: datetime.datetime | None = None
    ) -> Body:
        """Write ``status`` if ``body`` is still current; ``Stale`` with a fresh read if not.

        ``keep``: this replica holds the claim on that tick, and writes again over a change that
        left the claim with it; ``ClaimLost`` if it did not. A store that does not answer is tried
        again, well inside the claim's lease (``DeadlinePassed`` after).
        """
        while True:
            try:
                return await aiokit.retry_until_deadline(
                    functools.partial(self._write_once, body, status),
                    retry_on=(StoreUnavailable,),
                    within_seconds=self.claim_seconds / 3,
                    first_delay=0.1,
                    max_delay=2.0,
                )
            except Conflict:
                metadata = body["metadata"]
                body = await self.objects.get(SCHEDULES, metadata["namespace"], metadata["name"])
            if keep is None:
                raise Stale(body)
            try:
                still_held = holds_claim(status_of(body), keep, self.replica)
            except ValueError:
                still_held = False
            if not still_held:
                raise ClaimLost(body)

    async def _write_once(self, body: Body, status: dict[str, Any]) -> Body:
        metadata = body["metadata"]
        return await self.objects.write_status(
            SCHEDULES,
            metadata["namespace"],
            metadata["name"],
            status,
            resource_version=metadata["resourceVersion"],
        )
