"""The pure pieces of the gateway's bounds and listeners, and read_body's budget in-process."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from kfaas.config import BOUND_FLAGS, Settings, async_queue_for
from kfaas.gateway.asyncq import AsyncEvent, MemoryQueue, QueueFull, bound_refusal
from kfaas.gateway.errors import TooManyRequests, error_response
from kfaas.gateway.limits import (
    HEADER_TIMEOUT,
    OVER_CONNECTION_CAP,
    BodyBudget,
    BodyHold,
    body_holds,
)
from kfaas.gateway.listeners import Listener, parse_listeners, path_role
from kfaas.gateway.middleware import api_errors, read_body, request_ids

# -- the body budget ------------------------------------------------------------------------------


def test_budget_reserves_up_to_its_limit_and_takes_nothing_when_refusing() -> None:
    budget = BodyBudget(100)
    assert budget.reserve(60)
    assert not budget.reserve(41)
    assert budget.held_bytes == 60
    assert budget.reserve(40)
    budget.release(100)
    assert budget.held_bytes == 0


def test_a_hold_refuses_with_lambdas_throttle_and_gives_everything_back() -> None:
    budget = BodyBudget(100)
    first, second = BodyHold(budget, Settings()), BodyHold(budget, Settings())
    first.take(70)
    with pytest.raises(TooManyRequests) as refused:
        second.take(31)
    assert refused.value.status == 429
    assert refused.value.extra == {"Reason": "ConcurrentInvocationLimitExceeded"}
    assert refused.value.headers == {"Retry-After": "1"}
    second.take(30)
    first.release()
    first.release()  # twice is harmless
    assert budget.held_bytes == 30


# -- read_body against the budget, in a real aiohttp server ---------------------------------------


@pytest.fixture
async def budget_server() -> AsyncIterator[tuple[TestServer, asyncio.Event]]:
    """An app whose handler reads the body and then waits until ``release`` is set."""
    release = asyncio.Event()
    limits = Settings(body_memory_bytes=1000, body_idle_timeout_seconds=0.5)

    async def handler(request: web.Request) -> web.Response:
        body = await read_body(request, 6000)
        await release.wait()
        return web.Response(body=body)

    app = web.Application(middlewares=[request_ids, body_holds(limits), api_errors])
    app.router.add_post("/", handler)
    server = TestServer(app)
    await server.start_server()
    yield server, release
    await server.close()


async def test_bodies_held_at_once_are_bounded_and_released_when_requests_end(
    budget_server: tuple[TestServer, asyncio.Event],
) -> None:
    server, release = budget_server
    async with aiohttp.ClientSession() as session:

        async def post(size: int, chunked: bool = False) -> tuple[int, bytes]:
            data: bytes | AsyncIterator[bytes] = b"x" * size
            if chunked:

                async def pieces() -> AsyncIterator[bytes]:
                    for _ in range(size // 100):
                        yield b"x" * 100

                data = pieces()
            async with session.post(server.make_url("/"), data=data) as reply:
                return reply.status, await reply.read()

        held = asyncio.create_task(post(800))
        await asyncio.sleep(0.2)
        # Declared and chunked bodies both count; the budget has 200 bytes left.
        for status, body in [await post(300), await post(300, chunked=True)]:
            assert status == 429
            assert json.loads(body)["Reason"] == "ConcurrentInvocationLimitExceeded"
        release.set()
        assert await held == (200, b"x" * 800)
        # The held request ended: its bytes are back.
        assert await post(900) == (200, b"x" * 900)


async def test_a_stalled_body_gets_408(budget_server: tuple[TestServer, asyncio.Event]) -> None:
    server, release = budget_server
    release.set()
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc")
    answer = await asyncio.wait_for(reader.read(4096), 10)
    writer.close()
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert b"RequestTimeoutException" in answer


# -- the in-memory queue's bound ------------------------------------------------------------------


def _event(size: int, name: str = "e") -> AsyncEvent:
    return AsyncEvent.new("default/f", b"x" * size, request_id=name)


def test_bound_refusal_names_the_bound_that_is_reached() -> None:
    assert bound_refusal(0, 0, 10, 1, 10) is None
    assert "KFAAS_ASYNC_QUEUE_MAX_EVENTS" in (bound_refusal(1, 0, 1, 1, 10) or "")
    assert "KFAAS_ASYNC_QUEUE_MAX_BYTES" in (bound_refusal(0, 5, 6, 5, 10) or "")


async def test_memory_queue_refuses_new_events_past_its_bounds_but_never_a_retry() -> None:
    queue = MemoryQueue(max_events=3, max_bytes=100)
    await queue.accept(_event(60, "a"))
    with pytest.raises(QueueFull, match="MAX_BYTES"):
        await queue.accept(_event(41, "b"))
    await queue.accept(_event(20, "c"))
    await queue.accept(_event(20, "d"))
    with pytest.raises(QueueFull, match="MAX_EVENTS"):
        await queue.accept(_event(0, "e"))
    # A delivery being handled still counts; its retry is stored even past the bound.
    delivery = await queue.take()
    assert len(queue) == 3 and queue.held_bytes == 100
    await queue.put(delivery.event.replace(throttles=1), delay=0.0)
    await queue.done(delivery)
    assert len(queue) == 3 and queue.held_bytes == 100
    # Handled events give their room back.
    for _ in range(3):
        await queue.done(await queue.take())
    assert len(queue) == 0 and queue.held_bytes == 0
    await queue.accept(_event(100, "f"))


async def test_an_abandoned_delivery_keeps_its_place_and_its_bytes() -> None:
    queue = MemoryQueue(max_events=1, max_bytes=10)
    await queue.accept(_event(10))
    delivery = await queue.take()
    await queue.abandon(delivery)
    assert len(queue) == 1 and queue.held_bytes == 10
    with pytest.raises(QueueFull):
        await queue.accept(_event(1))


# -- listeners ----------------------------------------------------------------------------------


def test_without_listen_values_one_listener_serves_everything() -> None:
    assert parse_listeners([], "127.0.0.1", 8080) == [Listener("all", "127.0.0.1", 8080)]


def test_split_listeners_are_parsed() -> None:
    assert parse_listeners(["invoke=10.0.0.1:8081", " trigger=:8080\n"], "h", 1) == [
        Listener("invoke", "10.0.0.1", 8081),
        Listener("trigger", "0.0.0.0", 8080),
    ]
    assert parse_listeners(["all=[::1]:9000"], "h", 1) == [Listener("all", "::1", 9000)]


@pytest.mark.parametrize(
    "values",
    [
        ["invoke=127.0.0.1:8081"],  # triggers served nowhere
        ["all=:1", "invoke=:2"],  # the Invoke API twice
        ["public=:1", "invoke=:2"],
        ["invoke=:99999", "trigger=:1"],
        ["invoke=host", "trigger=:1"],
        ["invoke=a b:1", "trigger=:1"],
    ],
)
def test_bad_listen_values_are_refused(values: list[str]) -> None:
    with pytest.raises(ValueError, match="--listen"):
        parse_listeners(values, "h", 1)


def test_paths_belong_to_one_role_and_probes_to_both() -> None:
    assert path_role("/fn/default/web/x") == "trigger"
    assert path_role("/2015-03-31/functions/echo/invocations") == "invoke"
    assert path_role("/metrics") == "invoke"
    assert path_role("/healthz") == path_role("/readyz") == "both"
    assert path_role("/fnord") == "invoke"


# -- canned answers --------------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "status"), [(OVER_CONNECTION_CAP, 429), (HEADER_TIMEOUT, 408)])
def test_canned_answers_are_whole_http_responses_that_close(raw: bytes, status: int) -> None:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("ascii").split("\r\n")
    assert lines[0].startswith(f"HTTP/1.1 {status} ")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    assert int(headers["Content-Length"]) == len(body)
    assert headers["Connection"] == "close"
    assert json.loads(body)["__type"] == headers["x-amzn-ErrorType"]


def test_the_connection_cap_answer_matches_the_gateways_own_throttle() -> None:
    throttle = TooManyRequests("m", reason="ConcurrentInvocationLimitExceeded")
    rendered = error_response(throttle, "id")
    head, _, body = OVER_CONNECTION_CAP.partition(b"\r\n\r\n")
    assert f"Retry-After: {rendered.headers['Retry-After']}".encode() in head
    assert json.loads(body).keys() == json.loads(rendered.body).keys()  # type: ignore[arg-type]


# -- settings -------------------------------------------------------------------------------------


def test_bounds_have_documented_defaults() -> None:
    settings = Settings.from_env({})
    bounds = (
        settings.header_timeout_seconds,
        settings.body_idle_timeout_seconds,
        settings.body_timeout_seconds,
        settings.keepalive_timeout_seconds,
        settings.max_connections,
        settings.body_memory_bytes,
    )
    assert bounds == (10.0, 30.0, 120.0, 75.0, 1000, 64 << 20)
    assert (settings.async_queue_max_events, settings.async_queue_max_bytes) == (10_000, 64 << 20)


def test_bounds_are_read_from_variables_and_flags_win() -> None:
    settings = Settings.from_env(
        {"KFAAS_BODY_MEMORY_BYTES": "64Mi", "KFAAS_MAX_CONNECTIONS": "50",
         "KFAAS_HEADER_TIMEOUT_SECONDS": "2.5", "KFAAS_ASYNC_QUEUE_MAX_BYTES": "1Gi"}
    )  # fmt: skip
    assert settings.body_memory_bytes == 64 << 20 and settings.max_connections == 50
    assert settings.header_timeout_seconds == 2.5 and settings.async_queue_max_bytes == 1 << 30
    flagged = settings.with_flags({"--max-connections": "7", "--body-memory": "512Ki"})
    assert flagged.max_connections == 7 and flagged.body_memory_bytes == 512 << 10
    assert flagged.header_timeout_seconds == 2.5


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KFAAS_HEADER_TIMEOUT_SECONDS", "0"),
        ("KFAAS_BODY_IDLE_TIMEOUT_SECONDS", "soon"),
        ("KFAAS_KEEPALIVE_TIMEOUT_SECONDS", "-1"),
        ("KFAAS_MAX_CONNECTIONS", "0"),
        ("KFAAS_MAX_CONNECTIONS", "1.5"),
        ("KFAAS_BODY_MEMORY_BYTES", "128MB"),
        ("KFAAS_ASYNC_QUEUE_MAX_EVENTS", "many"),
    ],
)
def test_bad_bounds_name_the_variable_or_flag(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=f"^{variable}="):
        Settings.from_env({variable: value})
    with pytest.raises(ValueError, match=r"^--max-connections="):
        Settings().with_flags({"--max-connections": "-3"})


def test_the_redis_async_queue_is_the_platform_redis() -> None:
    with_redis = Settings(redis_url="redis://r:6379/0", async_queue="redis")
    assert async_queue_for("gateway", with_redis) == "redis://r:6379/0"
    with pytest.raises(ValueError, match="KFAAS_REDIS_URL"):
        async_queue_for("gateway", Settings(async_queue="redis"))


def test_every_bound_has_a_flag_on_both_server_commands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kfaas import cli

    assert set(cli.BOUND_HELP) == set(BOUND_FLAGS)
    for command in ("dev", "gateway"):
        assert cli.main([command, "--body-timeout", "soon"]) == 2
        assert capsys.readouterr().err == (
            f"kfaas {command}: --body-timeout='soon' must be a number of seconds\n"
        )
        assert cli.main([command, "--listen", "invoke=:1"]) == 2
        assert "--listen must serve" in capsys.readouterr().err
