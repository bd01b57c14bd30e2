"""Running the pollers of a mapping: wiring, `parallelism`, and guarded restarts.

`MappingRunner` turns one EventSourceMapping into `parallelism` consumers (for Kafka at most one per
partition) and keeps each alive: a consumer that fails — Kafka or Redis gone, a bug — is logged and
started again with backoff, never left silently stalled; a mapping that cannot run as written
(`MappingError`) stops the runner, and `kfaas poller` exits non-zero; `enabled: false` means no
consumer runs. `kfaas dev` runs its mappings' runners through `group.PollerGroup`.

A secured Kafka source or destination (`tls`, `auth`; ADR 027) has its Secrets read at every
(re)connect, through the API in a cluster or from `kfaas dev`'s files: a wrong password or an
untrusted certificate is a `KafkaAuthError`, reported as `Polling=False` and retried with the
consumers' backoff, and a fixed Secret is picked up at the next attempt. Nothing is committed
meanwhile, so the consumer resumes at the last checkpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import socket
from collections.abc import Awaitable, Callable

from kfaas import aiokit
from kfaas.brokers.destinations import platform_kafka, platform_redis
from kfaas.brokers.errors import BrokerError, DestinationError, KafkaAuthError
from kfaas.brokers.kafka_clients import topic_partition_count
from kfaas.brokers.kafka_security import KafkaSecurity, SecretReader, resolve_security
from kfaas.config import Settings
from kfaas.gateway_tokens import Authorization
from kfaas.manifests import EventSourceMapping, KafkaAuth, KafkaTls

from .batches import BatchLimits, RetryPolicy, effective_parallelism
from .delivery import DeliveryConfig, Position
from .destinations import Destination, KafkaTopicDestination, RedisStreamDestination
from .errors import MappingError
from .filters import FilterPatternError, compile_filters
from .invoking import GatewayInvoker
from .kafka_poller import KafkaMappingState, KafkaPoller, KafkaSettings
from .metrics import AUTHENTICATION_FAILED, SOURCE_UNREACHABLE, PollerMetrics
from .records import function_arn, kafka_topic_arn, redis_stream_arn
from .redis_poller import RedisPoller, RedisSettings
from .settings import PollerSettings

log = logging.getLogger("kfaas.pollers")

# A consumer that fails is started again after 0.5 s, doubling up to 30 s; one that ran a minute
# before failing starts its backoff afresh.
CONSUMER_RESTART = aiokit.Backoff(first=0.5, most=30.0, healthy_after=60.0)
PARTITIONS_RETRY_MOST = 2.0


class MappingRunner:
    def __init__(
        self,
        mapping: EventSourceMapping,
        *,
        gateway_url: str,
        settings: Settings,
        metrics: PollerMetrics,
        poller: PollerSettings | None = None,
        consumer_name: str | None = None,
        claim_idle_seconds: float | None = None,
        kafka_bootstrap_default: str | None = None,
        redis_url_default: str | None = None,
        gateway_authorization: Authorization | None = None,
        read_secret: SecretReader | None = None,
        platform_kafka_security: KafkaSecurity | None = None,
    ) -> None:
        self.mapping = mapping
        # The mapping's namespace's Secrets (None: none can be read, a secured source fails).
        self.read_secret = read_secret
        # How the platform's Kafka is reached, for a Kafka destination of a Redis source.
        self.platform_kafka_security = platform_kafka_security
        spec = mapping.spec
        namespace, name = mapping.metadata.namespace, mapping.metadata.name
        self.metrics = metrics.for_mapping((namespace, spec.function_name, name))
        # A qualified mapping invokes `name:qualifier` (a version, or an alias's pick per batch).
        invoked = f"{spec.function_name}:{spec.qualifier}" if spec.qualifier else spec.function_name
        try:
            self.invoker = GatewayInvoker(
                gateway_url, namespace, invoked, authorization=gateway_authorization
            )
        except ValueError as exc:
            raise MappingError(str(exc)) from None
        self.settings = settings
        poller = poller or PollerSettings()
        # Redis consumer names: stable per pod (or host), so a restarted poller finds its entries.
        self.consumer_name = consumer_name or poller.consumer_name or socket.gethostname()
        self.claim_idle_seconds = claim_idle_seconds or poller.claim_idle_seconds
        self.kafka_default = kafka_bootstrap_default or settings.kafka_bootstrap_servers
        self.redis_default = redis_url_default or settings.redis_url
        try:
            filters = spec.filter_criteria.filters if spec.filter_criteria else []
            self.filter = compile_filters([f.pattern for f in filters])
        except FilterPatternError as exc:
            raise MappingError(f"{mapping.key}: filterCriteria.{exc}") from None
        self.limits = BatchLimits(spec.batch_size, spec.maximum_batching_window_seconds)
        self.delivery_config = DeliveryConfig(
            policy=RetryPolicy(
                maximum_retry_attempts=spec.maximum_retry_attempts,
                maximum_record_age_seconds=spec.maximum_record_age_seconds,
                bisect_on_function_error=spec.bisect_batch_on_function_error,
                base_seconds=settings.stream_retry_base_seconds,
            ),
            report_item_failures="ReportBatchItemFailures" in spec.function_response_types,
            function_arn=function_arn(settings.region, namespace, invoked),
        )
        self.destination = self._destination()
        self.attempts: dict[Position, int] = {}
        self.kafka_state = KafkaMappingState(attempts=self.attempts)

    def _destination(self) -> Destination | None:
        config = self.mapping.spec.destination_config
        target = config.on_failure if config else None
        if target is None:
            return None
        # A destination without a server of its own uses the source's (and the source's
        # security), when the source is of the same kind, and the platform's otherwise.
        source = self.mapping.spec
        what = f"{self.mapping.key}: destinationConfig.onFailure"
        try:
            if target.kafka is not None:
                own = target.kafka
                if own.bootstrap_servers is not None:
                    servers = own.bootstrap_servers
                    security = self._resolver(own.tls, own.auth)
                elif source.kafka is not None:
                    servers = source.kafka.bootstrap_servers
                    security = self._resolver(source.kafka.tls, source.kafka.auth)
                else:
                    servers = platform_kafka(None, self.kafka_default, what=f"{what}.kafka")
                    security = self._platform_security
                return KafkaTopicDestination(servers, own.topic, security)
            assert target.redis is not None
            named = target.redis.url or (source.redis.url if source.redis else None)
            url = platform_redis(named, self.redis_default, what=f"{what}.redis")
            return RedisStreamDestination(url, target.redis.stream)
        except DestinationError as exc:
            raise MappingError(str(exc)) from None

    def _resolver(
        self, tls: KafkaTls | None, auth: KafkaAuth | None
    ) -> Callable[[], Awaitable[KafkaSecurity | None]]:
        async def resolve() -> KafkaSecurity | None:
            return await resolve_security(tls, auth, self.read_secret)

        return resolve

    async def _platform_security(self) -> KafkaSecurity | None:
        return self.platform_kafka_security

    async def _source_security(self) -> KafkaSecurity | None:
        """The source's security, its Secrets read now: at every (re)connect."""
        kafka = self.mapping.spec.kafka
        assert kafka is not None
        return await resolve_security(kafka.tls, kafka.auth, self.read_secret)

    async def run(self) -> None:
        """Run the mapping's consumers until cancelled (or a MappingError)."""
        spec = self.mapping.spec
        if not spec.enabled:
            log.info("mapping %s is disabled; not polling", self.mapping.key)
            await asyncio.Event().wait()
        count = spec.parallelism
        if spec.kafka is not None:
            count = effective_parallelism(spec.parallelism, await self._partitions())
        log.info(
            "mapping %s: polling with %d consumer(s)",
            self.mapping.key,
            count,
            extra={"mapping": self.mapping.key, "function": spec.function_name},
        )
        # A consumer that fails (its broker gone, a bug) is logged and started again; only a
        # MappingError (the mapping cannot run as written) ends the runner.
        tasks = [
            aiokit.guarded_task(
                f"poller-{self.mapping.key}-{index}",
                self._consumer_factory(index),
                log=log,
                restart=CONSUMER_RESTART,
                expected=(BrokerError,),
                fatal=(MappingError,),
                on_return="restart",
            )
            for index in range(count)
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            await aiokit.stop_tasks(tasks, grace_seconds=0)
            await self.close()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.invoker.close()
        if self.destination is not None:
            with contextlib.suppress(Exception):
                await self.destination.close()

    async def _partitions(self) -> int | None:
        kafka = self.mapping.spec.kafka
        assert kafka is not None

        def failed(exc: BaseException, delay: float) -> None:
            log.warning(
                "cannot read partitions of %s yet (again in %.1f s): %s", kafka.topic, delay, exc
            )
            self._source_failed(exc)

        async def count() -> int | None:
            security = await self._source_security()
            return await topic_partition_count(kafka.bootstrap_servers, kafka.topic, security)

        return await aiokit.retry_until_deadline(
            count,
            retry_on=(BrokerError,),
            within_seconds=math.inf,  # the consumers cannot start without it
            first_delay=CONSUMER_RESTART.first,
            # Each attempt may read Secrets through the API: a wrong password is not hammered.
            max_delay=PARTITIONS_RETRY_MOST,
            on_retry=failed,
        )

    def _source_failed(self, exc: BaseException) -> None:
        reason = AUTHENTICATION_FAILED if isinstance(exc, KafkaAuthError) else SOURCE_UNREACHABLE
        self.metrics.activity.source_failed(str(exc), reason)

    def _consumer_factory(self, index: int) -> Callable[[], Awaitable[None]]:
        spec = self.mapping.spec
        namespace = self.mapping.metadata.namespace
        region = self.settings.region

        async def consume_kafka() -> None:
            assert spec.kafka is not None
            # Read at every (re)start: a Secret fixed since the last attempt is used now.
            security = await self._source_security()
            poller = KafkaPoller(
                settings=KafkaSettings(
                    bootstrap_servers=spec.kafka.bootstrap_servers,
                    topic=spec.kafka.topic,
                    group_id=spec.kafka.consumer_group_id or self.mapping.metadata.name,
                    from_beginning=spec.kafka.starting_position == "TRIM_HORIZON",
                    limits=self.limits,
                    client_id=f"kfaas-{self.mapping.metadata.name}-{index}",
                    security=security,
                ),
                invoke=self.invoker,
                delivery_config=self.delivery_config,
                metrics=self.metrics,
                state=self.kafka_state,
                record_filter=self.filter,
                destination=self.destination,
                stream_arn=kafka_topic_arn(region, namespace, spec.kafka.topic),
            )
            await poller.run()

        async def run_kafka() -> None:
            # A Secret missing, a CA that is no PEM or a refused login is reported like an outage.
            await self._reporting_source_errors(consume_kafka())

        async def run_redis() -> None:
            assert spec.redis is not None
            poller = RedisPoller(
                settings=RedisSettings(
                    url=spec.redis.url,
                    stream=spec.redis.stream,
                    group=spec.redis.consumer_group or self.mapping.metadata.name,
                    consumer=f"{self.consumer_name}-{index}",
                    from_beginning=spec.redis.starting_position == "TRIM_HORIZON",
                    limits=self.limits,
                    region=region,
                    claim_idle_seconds=self.claim_idle_seconds,
                ),
                invoke=self.invoker,
                delivery_config=self.delivery_config,
                metrics=self.metrics,
                attempts=self.attempts,
                record_filter=self.filter,
                destination=self.destination,
                stream_arn=redis_stream_arn(region, namespace, spec.redis.stream),
            )
            await self._reporting_source_errors(poller.run())

        return run_kafka if spec.kafka is not None else run_redis

    async def _reporting_source_errors(self, run: Awaitable[None]) -> None:
        try:
            await run
        except BrokerError as exc:
            self._source_failed(exc)
            raise


def describe(mapping: EventSourceMapping) -> str:
    spec = mapping.spec
    if spec.kafka is not None:
        source = f"kafka topic {spec.kafka.topic} ({spec.kafka.bootstrap_servers})"
    else:
        assert spec.redis is not None
        source = f"redis stream {spec.redis.stream} ({spec.redis.url})"
    state = "polling" if spec.enabled else "disabled"
    return f"mapping {mapping.key}: {state} {source} -> {spec.function_name}"
