"""Concurrency slots shared by gateway replicas, kept in Redis (ADR 028).

A function's reserved concurrency is one budget for the whole platform, so every gateway replica
takes a slot from the same sorted set before it runs an invocation: member
``<replica>:<id>``, score = the lease's expiry in the Redis server's clock (one clock for every
replica, whatever their own clocks say). One Lua script drops the expired members, counts and
adds when below the limit, atomically; a replica renews the leases it holds while their
invocations run, so the slots of a replica that crashed expire by themselves. Replicas announce
themselves in one more sorted set the same way, which tells each how many are alive.

Every redis-py error leaves as a ``kfaas.brokers.errors`` exception (``BrokerUnavailable`` when
the server is down or slow).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from .errors import redis_errors
from .policies import RedisPolicy, open_redis
from .redis_streams import _awaited

# In the request path of reserved functions: a Redis that does not answer within this long is
# treated as down (the caller falls back to its local share) rather than holding the invocation.
SLOT_CALLS = RedisPolicy("slot-calls", call_seconds=1.0, library_retries=False)

_NOW_MS = "local t = redis.call('TIME') local now = t[1] * 1000 + math.floor(t[2] / 1000) "

# KEYS[1] the function's slots; ARGV: lease ms, limit, member. 1 = taken, 0 = full.
_ACQUIRE = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[3])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return 1
"""
)

# KEYS[1] the function's slots; ARGV: lease ms, members… Sets their expiry whether or not they
# are there: these invocations run, so the count must include them (a lease lost in an outage
# is registered again).
_RENEW = (
    _NOW_MS
    + """
local expiry = now + tonumber(ARGV[1])
for i = 2, #ARGV do redis.call('ZADD', KEYS[1], expiry, ARGV[i]) end
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return #ARGV - 1
"""
)

# KEYS[1] the replicas; ARGV: lease ms, this replica. Returns how many are alive, this one too.
_HEARTBEAT = (
    _NOW_MS
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[1]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[1]))
return redis.call('ZCARD', KEYS[1])
"""
)

PREFIX = "kfaas:reserved:"


class SharedSlots:
    """The slot commands on one Redis server, each bounded by ``SLOT_CALLS``'s deadline."""

    def __init__(self, url: str, *, policy: RedisPolicy = SLOT_CALLS, prefix: str = PREFIX) -> None:
        self.policy = policy
        self.prefix = prefix
        self.client = open_redis(url, policy)
        self._acquire = self.client.register_script(_ACQUIRE)
        self._renew = self.client.register_script(_RENEW)
        self._heartbeat = self.client.register_script(_HEARTBEAT)

    async def close(self) -> None:
        await self.client.aclose()

    async def reconnect(self) -> None:
        """Drop every pooled connection: after an outage they are dead, and each would fail its
        next command (redis-py retries nothing under this policy)."""
        with redis_errors("dropping connections"):
            await self.client.connection_pool.disconnect()

    def _slots_key(self, function: str) -> str:
        # The sorted set of ``namespace/name``'s slots: all its versions share it.
        return f"{self.prefix}fn:{function}"

    async def _run(self, what: str, script: Any, keys: list[str], args: list[Any]) -> int:
        with redis_errors(what):
            async with asyncio.timeout(self.policy.call_seconds):
                return int(await _awaited(script(keys=keys, args=args)))

    async def acquire(self, function: str, member: str, limit: int, lease_ms: int) -> bool:
        """Take a slot of ``function`` for ``member`` unless ``limit`` are taken."""
        taken = await self._run(
            f"taking a slot of {function}", self._acquire, [self._slots_key(function)],
            [lease_ms, limit, member],
        )  # fmt: skip
        return taken == 1

    async def renew(self, function: str, members: Iterable[str], lease_ms: int) -> None:
        """Extend (or register again) the leases of ``members``, which are running."""
        members = list(members)
        if members:
            await self._run(
                f"renewing slots of {function}", self._renew, [self._slots_key(function)],
                [lease_ms, *members],
            )  # fmt: skip

    async def release(self, function: str, members: Iterable[str]) -> None:
        members = list(members)
        if members:
            with redis_errors(f"releasing slots of {function}"):
                async with asyncio.timeout(self.policy.call_seconds):
                    await _awaited(self.client.zrem(self._slots_key(function), *members))

    async def heartbeat(self, replica: str, lease_ms: int) -> int:
        """Announce ``replica`` for ``lease_ms``; the number of replicas alive now."""
        return await self._run(
            "announcing this gateway",
            self._heartbeat,
            [self.prefix + "gateways"],
            [lease_ms, replica],
        )

    async def taken(self, function: str) -> int:
        """How many slots of ``function`` are held now, expired ones left out (for tests)."""
        with redis_errors(f"counting slots of {function}"):
            async with asyncio.timeout(self.policy.call_seconds):
                time = await _awaited(self.client.time())
                now = int(time[0]) * 1000 + int(time[1]) // 1000
                return int(
                    await _awaited(self.client.zcount(self._slots_key(function), now, "+inf"))
                )
