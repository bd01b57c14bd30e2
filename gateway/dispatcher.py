"""Runs queued asynchronous invocations with Lambda's retry rules and destinations.

Each event is invoked through the same ``Invoker`` as sync calls. The retry decision is the pure
``kfaas.retries.next_async_step``; this loop only acts on it: re-queue with a delay, or hand an
invocation record to the ``onSuccess``/``onFailure`` destination. An event is marked done only
after its successor (retry, destination record) is stored, so nothing is dropped silently: events
with no failure destination are counted in ``kfaas_async_events_dropped`` and logged.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import time
import uuid
from typing import Any, Literal, Protocol

from kfaas import aiokit
from kfaas.events import invocation_record
from kfaas.manifests import Function
from kfaas.names import FunctionRef, function_arn
from kfaas.retries import next_async_step

from .asyncq import LOOP_RESTART, AsyncEvent, AsyncQueue, Delivery
from .errors import ApiError, ResourceNotFound, TooManyRequests
from .invoker import InvokeOptions, Invoker, InvokeResult

log = logging.getLogger("kfaas.gateway.dispatcher")

Condition = Literal["Success", "RetriesExhausted", "EventAgeExceeded"]
# How long stop() waits for cancelled dispatcher tasks to end.
STOP_GRACE_SECONDS = 2.0


class DestinationSender(Protocol):
    """Delivers invocation records to Kafka topics or Redis streams (function targets stay here).

    ``namespace`` is the function's: a destination's Secrets (Kafka ``tls``/``auth``) are there.
    """

    async def send(self, destination: Any, record: dict[str, Any], *, namespace: str) -> None: ...


class NoExternalDestinations:
    async def send(self, destination: Any, record: dict[str, Any], *, namespace: str) -> None:
        raise RuntimeError(
            f"destination {destination!r} needs a Kafka or Redis destination sender, "
            "which this gateway was started without"
        )


class Dispatcher:
    def __init__(
        self,
        queue: AsyncQueue,
        invoker: Invoker,
        *,
        retry_base_seconds: float,
        concurrency: int = 16,
        destinations: DestinationSender | None = None,
        functions_known: asyncio.Event | None = None,
    ) -> None:
        self.queue = queue
        # Set once the registry holds every function (the Kubernetes backend's first list): an
        # event taken before would find its function "gone" and be dropped after a restart.
        self.functions_known = functions_known
        self.invoker = invoker
        self.retry_base_seconds = retry_base_seconds
        self.concurrency = concurrency
        self.destinations = destinations or NoExternalDestinations()
        self._tasks: list[asyncio.Task[None]] = []
        self._busy: set[asyncio.Task[Any]] = set()
        self._stopping = False

    def start(self) -> None:
        self._tasks = [
            aiokit.guarded_task(
                f"kfaas-async-dispatcher-{index}", self._run, log=log, restart=LOOP_RESTART
            )
            for index in range(self.concurrency)
        ]

    async def stop(self, drain_seconds: float = 10.0) -> None:
        """Stop taking events; let invocations under way finish for up to ``drain_seconds``.

        What is still running after that is cancelled and stays in a durable queue, which
        delivers it again (to another replica, or to this one after a restart).
        """
        self._stopping = True
        busy = [task for task in self._tasks if task in self._busy]
        for task in self._tasks:
            if task not in self._busy:
                task.cancel()
        if busy:
            await asyncio.wait(busy, timeout=drain_seconds)
        # A task still running after STOP_GRACE_SECONDS swallowed its cancellation (a client
        # library can): it is logged, and the queue's close ends it.
        await aiokit.stop_tasks(
            self._tasks, grace_seconds=0, cancelled_seconds=STOP_GRACE_SECONDS, log=log
        )
        self._tasks.clear()

    async def _run(self) -> None:
        if self.functions_known is not None:
            await self.functions_known.wait()
        while not self._stopping:
            delivery = await self.queue.take()
            task = asyncio.current_task()
            assert task is not None
            self._busy.add(task)
            try:
                await self._handle_one(delivery)
            finally:
                self._busy.discard(task)

    async def _handle_one(self, delivery: Delivery) -> None:
        try:
            await self.handle(delivery)
        except Exception:
            # Given back to the queue, which delivers it again later; log loudly.
            log.exception("async event %s could not be handled", delivery.event.request_id)
            try:
                await self.queue.abandon(delivery)
            except Exception:
                log.exception("async event %s could not be given back", delivery.event.request_id)
            return
        try:
            await self.queue.done(delivery)
        except Exception:
            # Handled but not acknowledged: the queue redelivers it, a duplicate at worst.
            log.exception("async event %s could not be acknowledged", delivery.event.request_id)

    async def handle(self, delivery: Delivery) -> None:
        event = delivery.event
        try:
            function = self.invoker.registry.get(event.function_key)
        except ResourceNotFound:
            log.error(
                "async event %s dropped: function %s no longer exists",
                event.request_id,
                event.function_key,
            )
            return
        config = function.spec.async_
        age = time.time() - event.accepted_at
        labels = _labels(function)
        self.invoker.metrics.async_event_age.labels(*labels).observe(age)
        if age > config.maximum_event_age_seconds:
            await self._finish(function, event, "EventAgeExceeded", None)
            return
        result: InvokeResult | None = None
        outcome: Literal["success", "function_error", "throttled", "service_error"]
        try:
            result = await self.invoker.invoke(
                event.function_key,
                event.payload,
                InvokeOptions(request_id=event.request_id, carrier=dict(event.carrier)),
            )
            event = event.replace(invocations=event.invocations + 1)
            if result.function_error:
                event = event.replace(function_errors=event.function_errors + 1)
                outcome = "function_error"
            else:
                outcome = "success"
        except TooManyRequests:
            event = event.replace(throttles=event.throttles + 1)
            outcome = "throttled"
        except ApiError as exc:
            log.warning("async event %s: %s", event.request_id, exc.message)
            event = event.replace(throttles=event.throttles + 1)
            outcome = "service_error"
        step = next_async_step(
            outcome=outcome,
            # Throttles and platform errors have their own backoff and must not use up the
            # function-error retries; a success is attempt one of nothing in particular.
            attempts_made=max(
                1, event.function_errors if outcome == "function_error" else event.throttles
            ),
            max_retry_attempts=config.maximum_retry_attempts,
            event_age_seconds=time.time() - event.accepted_at,
            max_event_age_seconds=config.maximum_event_age_seconds,
            base_seconds=self.retry_base_seconds,
        )
        if step.kind == "retry":
            await self.queue.put(event, delay=step.delay)
        elif step.kind == "done_success":
            await self._finish(function, event, "Success", result)
        elif step.kind == "give_up_retries":
            await self._finish(function, event, "RetriesExhausted", result)
        else:
            await self._finish(function, event, "EventAgeExceeded", result)

    async def _finish(
        self,
        function: Function,
        event: AsyncEvent,
        condition: Condition,
        result: InvokeResult | None,
    ) -> None:
        config = function.spec.async_
        destination = config.on_success if condition == "Success" else config.on_failure
        namespace, name = function.metadata.namespace, function.metadata.name
        if destination is None:
            if condition != "Success":
                self.invoker.metrics.async_dropped.labels(*_labels(function), condition).inc()
                log.warning(
                    "async event %s of %s ended with %s and has no onFailure destination",
                    event.request_id,
                    function.key,
                    condition,
                )
            return
        record = invocation_record(
            request_id=event.request_id,
            # The version the event runs (an alias was resolved when the event was accepted).
            function_arn=function_arn(
                namespace, name, region=self.invoker.registry.region, qualifier=function.version
            ),
            executed_version=function.version,
            condition=condition,
            approximate_invoke_count=event.invocations,
            request_payload=_json_or_text(event.payload),
            status_code=200 if result is not None else 429,
            function_error=result.function_error if result else None,
            response_payload=_json_or_text(result.payload) if result else None,
            timestamp=datetime.datetime.now(datetime.UTC),
        )
        try:
            if destination.function is not None:
                # A qualified destination runs that version; an alias picks when queued.
                ref = FunctionRef(
                    namespace, destination.function.name, destination.function.qualifier
                )
                target = self.invoker.registry.resolve(ref).key
                body = json.dumps(record).encode()
                await self.queue.put(AsyncEvent.new(target, body, request_id=str(uuid.uuid4())))
            else:
                await self.destinations.send(destination, dict(record), namespace=namespace)
        except Exception as exc:
            self.invoker.metrics.destination_failures.labels(*_labels(function)).inc()
            log.error(
                "invocation record of %s (%s) could not be delivered to %s: %s",
                event.request_id,
                condition,
                destination,
                exc,
            )


def _labels(function: Function) -> tuple[str, str, str]:
    return function.metadata.namespace, function.metadata.name, function.version


def _json_or_text(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):  # accepted JSON may be nested past Python's limit
        return payload.decode(errors="replace")
