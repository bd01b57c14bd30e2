"""Sends Lambda's invocation records to Kafka-topic and Redis-stream destinations.

A destination names its own cluster (``bootstrapServers``) or server (``url``), or else the
platform's (``KFAAS_KAFKA_BOOTSTRAP_SERVERS``, ``KFAAS_REDIS_URL``). One producer per Kafka cluster
and one client per Redis server are opened on first use and kept. Kafka records are keyed by the
request id; Redis entries carry the record as JSON in the field ``body`` (what the Redis
event-source poller hands handlers as the SQS record's ``body``). aiokafka and redis errors become
``DestinationError``; a short outage is ridden out by retrying until a deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from kfaas.manifests import Destination

REDIS_FIELD = "body"


class DestinationError(Exception):
    """An invocation record could not be delivered; the message names the destination."""


class ClientDestinations:
    """The gateway's ``DestinationSender`` for Kafka and Redis destinations."""

    def __init__(
        self,
        *,
        redis_url: str | None = None,
        kafka_bootstrap_servers: str | None = None,
        deadline_seconds: float = 15.0,
    ) -> None:
        self.redis_url = redis_url
        self.kafka_bootstrap_servers = kafka_bootstrap_servers
        self.deadline_seconds = deadline_seconds
        self._producers: dict[str, AIOKafkaProducer] = {}
        self._redis: dict[str, aioredis.Redis] = {}
        self._lock = asyncio.Lock()

    async def send(self, destination: Any, record: dict[str, Any]) -> None:
        if not isinstance(destination, Destination):
            raise DestinationError(f"not a Kafka or Redis destination: {destination!r}")
        body = json.dumps(record).encode()
        request_id = str(record.get("requestContext", {}).get("requestId", ""))
        if destination.kafka is not None:
            servers = destination.kafka.bootstrap_servers or self.kafka_bootstrap_servers
            if not servers:
                raise DestinationError(
                    f"kafka destination {destination.kafka.topic!r} has no bootstrapServers "
                    "and KFAAS_KAFKA_BOOTSTRAP_SERVERS is not set"
                )
            await self._to_kafka(servers, destination.kafka.topic, body, request_id)
        elif destination.redis is not None:
            url = destination.redis.url or self.redis_url
            if not url:
                raise DestinationError(
                    f"redis destination {destination.redis.stream!r} has no url "
                    "and KFAAS_REDIS_URL is not set"
                )
            await self._to_redis(url, destination.redis.stream, body)
        else:
            raise DestinationError(f"not a Kafka or Redis destination: {destination!r}")

    async def close(self) -> None:
        for producer in self._producers.values():
            with contextlib.suppress(KafkaError):
                await producer.stop()
        for client in self._redis.values():
            await client.aclose()
        self._producers.clear()
        self._redis.clear()

    async def _to_kafka(self, servers: str, topic: str, body: bytes, key: str) -> None:
        where = f"kafka topic {topic!r} at {servers}"

        async def send() -> None:
            producer = await self._producer(servers)
            await producer.send_and_wait(topic, body, key=key.encode() or None)

        await self._retrying(where, send, (KafkaError,))

    async def _to_redis(self, url: str, stream: str, body: bytes) -> None:
        client = self._client(url)

        async def add() -> None:
            await client.xadd(stream, {REDIS_FIELD: body})

        await self._retrying(
            f"redis stream {stream!r} at {url}",
            add,
            (RedisConnectionError, RedisTimeoutError, OSError),
            fatal=(RedisError,),
        )

    async def _producer(self, servers: str) -> AIOKafkaProducer:
        async with self._lock:
            producer = self._producers.get(servers)
            if producer is None:
                producer = AIOKafkaProducer(
                    bootstrap_servers=servers, acks="all", enable_idempotence=True
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producers[servers] = producer
            return producer

    def _client(self, url: str) -> aioredis.Redis:
        client = self._redis.get(url)
        if client is None:
            # No socket_timeout (see redis_queue_clients): _retrying bounds each call instead.
            client = aioredis.Redis.from_url(
                url, socket_connect_timeout=5, socket_keepalive=True, retry=Retry(NoBackoff(), 0)
            )
            self._redis[url] = client
        return client

    async def _retrying(
        self,
        where: str,
        operation: Callable[[], Awaitable[None]],
        transient: tuple[type[Exception], ...],
        *,
        fatal: tuple[type[Exception], ...] = (),
    ) -> None:
        deadline = time.monotonic() + self.deadline_seconds
        delay = 0.1
        retried: tuple[type[Exception], ...] = (*transient, TimeoutError)
        while True:
            try:
                async with asyncio.timeout(max(0.1, deadline - time.monotonic())):
                    await operation()
                return
            except retried as exc:
                if time.monotonic() + delay > deadline:
                    raise DestinationError(
                        f"{where}: not delivered within {self.deadline_seconds:g} s: {exc!r}"
                    ) from exc
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except fatal as exc:
                raise DestinationError(f"{where}: {exc}") from exc
