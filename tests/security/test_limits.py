"""Bounded resources and separate listeners (issue 8, points 4 and 7), against real `kfaas dev`.

The floods of the issue keep the gateway under the chart's 512 Mi limit while a valid call still
succeeds; slow and idle clients are cut off by the timeouts (short ones here, set through the
environment and flags); past the connection cap a client gets 429; split listeners serve only their
own half of the API. These are behaviour tests: bounds hold and answers are right, never timings.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from devserver import KFAAS, DevServer, dev_server
from security.floods import MB, Answer, call, event_flood, invoke_path, sync_flood
from waiting import eventually

FUNCTIONS = Path(__file__).parent / "limits_functions"
CHART_LIMIT = 512 * MB

pytestmark = pytest.mark.timeout(300)


def _address(url: str) -> tuple[str, int]:
    parts = urllib.parse.urlsplit(url)
    return parts.hostname or "", parts.port or 80


@contextlib.contextmanager
def _socket(url: str) -> Iterator[socket.socket]:
    sock = socket.create_connection(_address(url), timeout=30)
    try:
        yield sock
    finally:
        sock.close()


def _closed_by_server(sock: socket.socket, *, within: float, keep_sending: bytes = b"") -> bytes:
    """Everything the server sent until it closed the connection (AssertionError if it never did).

    ``keep_sending`` is written once a second meanwhile, as a slow client would.
    """
    sock.settimeout(1.0)
    received = b""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            if keep_sending:
                try:
                    sock.sendall(keep_sending)
                except OSError:
                    return received
            continue
        except ConnectionResetError:
            return received
        if not data:
            return received
        received += data
    raise AssertionError(f"the server kept the connection open; it sent {received[:200]!r}")


def _refusals(url: str, bound: str) -> float:
    """The gateway's ``kfaas_gateway_refusals_total`` for one bound, from /metrics."""
    text = call(url, "/metrics", method="GET").body.decode()
    prefix = f'kfaas_gateway_refusals_total{{bound="{bound}"}} '
    return sum(float(line[len(prefix) :]) for line in text.splitlines() if line.startswith(prefix))


def _throttle_answer_is_lambdas(answer: Answer) -> None:
    assert answer.status == 429, answer
    assert answer.headers["x-amzn-errortype"] == "TooManyRequestsException"
    assert answer.headers["retry-after"] == "1"
    body = json.loads(answer.body)
    assert body["Reason"] == "ConcurrentInvocationLimitExceeded"
    assert body["__type"] == "TooManyRequestsException"


# -- the two floods, with the defaults the chart uses ------------------------------------------


@pytest.fixture(scope="module")
def flood_server() -> Iterator[DevServer]:
    with dev_server([FUNCTIONS]) as server:
        # Instances up before the flood, so the valid call does not wait for a cold start.
        assert call(server.url, invoke_path("echo"), b"{}").status == 200
        yield server


def test_event_flood_is_refused_past_the_queue_bound_and_rss_stays_under_the_limit(
    flood_server: DevServer,
) -> None:
    result = event_flood(flood_server.url, flood_server.process.pid)
    assert result.rss_peak < CHART_LIMIT, result
    # Every answer is an acceptance or Lambda's throttle, never a failure.
    assert set(result.statuses) <= {202, 429}, (result.statuses, result.refusals[:3])
    assert result.statuses[202] >= 1 and result.statuses[429] >= 1, result.statuses
    for refusal in result.refusals:
        _throttle_answer_is_lambdas(refusal)
    for valid in result.valid_calls:
        assert (valid.status, json.loads(valid.body)) == (200, {"valid": True}), valid
    assert _refusals(flood_server.url, "async_queue") == result.statuses[429]


def test_sync_flood_holds_at_most_the_body_budget_and_rss_stays_under_the_limit(
    flood_server: DevServer,
) -> None:
    result = sync_flood(flood_server.url, flood_server.process.pid)
    assert result.rss_peak < CHART_LIMIT, result
    assert set(result.statuses) <= {200, 429}, (result.statuses, result.refusals[:3])
    assert result.statuses[200] >= 1, result.statuses
    for refusal in result.refusals:
        _throttle_answer_is_lambdas(refusal)
    for valid in result.valid_calls:
        assert (valid.status, json.loads(valid.body)) == (200, {"valid": True}), valid
    # (A call that waited past the router's 60 s for the instance would be a 429 of its own.)
    assert 1 <= _refusals(flood_server.url, "body_memory") <= result.statuses[429]
    # Every body went back to the budget once its request was answered.
    metrics = call(flood_server.url, "/metrics", method="GET").body.decode()
    assert "kfaas_gateway_body_bytes_held 0.0" in metrics.splitlines()


# -- slow and idle clients, with short timeouts --------------------------------------------------

SHORT_TIMEOUTS = {
    "KFAAS_HEADER_TIMEOUT_SECONDS": "2",
    "KFAAS_BODY_IDLE_TIMEOUT_SECONDS": "2",
    "KFAAS_BODY_TIMEOUT_SECONDS": "5",
    "KFAAS_KEEPALIVE_TIMEOUT_SECONDS": "3",
}


@pytest.fixture(scope="module")
def short_server() -> Iterator[DevServer]:
    with dev_server([FUNCTIONS], env=SHORT_TIMEOUTS) as server:
        yield server


def test_partial_headers_are_answered_408_and_closed(short_server: DevServer) -> None:
    with _socket(short_server.url) as sock:
        sock.sendall(b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: x\r\nX-A")
        received = _closed_by_server(sock, within=30)
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert _refusals(short_server.url, "header_timeout") >= 1


def test_slowloris_connections_are_all_cut_off(short_server: DevServer) -> None:
    """Many connections each sending a header byte every second: the head never completes."""
    socks = [socket.create_connection(_address(short_server.url), timeout=30) for _ in range(40)]
    try:
        for sock in socks:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for sock in socks:
            received = _closed_by_server(sock, within=30, keep_sending=b"X")
            assert received == b"" or received.startswith(b"HTTP/1.1 408 "), received
    finally:
        for sock in socks:
            sock.close()
    # The gateway still serves.
    assert call(short_server.url, "/healthz", method="GET").status == 200


def test_a_slow_but_steady_head_within_the_timeout_is_served(short_server: DevServer) -> None:
    with _socket(short_server.url) as sock:
        for piece in (b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"\r\n"):
            sock.sendall(piece)
            time.sleep(0.3)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")


def test_a_head_over_64_kib_is_answered_431_and_closed(short_server: DevServer) -> None:
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"f" * 1000) for n in range(100))
    with _socket(short_server.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + filler)
        received = _closed_by_server(sock, within=30)
    assert received.startswith(b"HTTP/1.1 431 "), received
    assert _refusals(short_server.url, "header_size") >= 1
    # A head under the bound (40 KB of headers) is served.
    filler = b"".join(b"X-Filler-%d: %s\r\n" % (n, b"f" * 1000) for n in range(40))
    with _socket(short_server.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + filler + b"\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")


def test_a_body_is_never_counted_as_head_even_when_the_blank_line_is_split(
    short_server: DevServer,
) -> None:
    body = json.dumps({"pad": "p" * 200_000}).encode()
    head = (
        b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: x\r\n"
        b"Content-Length: %d\r\n\r" % len(body)
    )
    with _socket(short_server.url) as sock:
        for piece in (head, b"\n", body):
            sock.sendall(piece)
            time.sleep(0.2)
        sock.settimeout(30)
        reply = b""
        while b"\r\n\r\n" not in reply:
            reply += sock.recv(65536)
    assert reply.startswith(b"HTTP/1.1 200 "), reply[:300]


def test_an_answer_given_before_its_body_was_read_closes_the_connection(
    short_server: DevServer,
) -> None:
    """The rest of that body could be taken for a next head, so none is read after it.

    The body's last bytes are held back until the answer has come, so that the body is still
    unread when it is given (sent whole, it may all be buffered before the handler runs, and a
    buffered body has known bounds: a next request after it is then served, as it should be).
    """
    body = b"{" + b" " * 200_000 + b"}"
    with _socket(short_server.url) as sock:
        sock.sendall(
            b"POST /2015-03-31/functions/no-such-function/invocations HTTP/1.1\r\nHost: x\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body) + body[:-1000]
        )  # fmt: skip
        sock.settimeout(30)
        received = b""
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536)
        with contextlib.suppress(OSError):  # the server may have closed already
            sock.sendall(body[-1000:] + b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        received += _closed_by_server(sock, within=30)
    assert received.startswith(b"HTTP/1.1 404 "), received
    assert received.count(b"HTTP/1.1 ") == 1, received


def test_a_new_connection_that_sends_nothing_is_closed_at_the_header_timeout(
    short_server: DevServer,
) -> None:
    with _socket(short_server.url) as sock:
        received = _closed_by_server(sock, within=30)
    assert received.startswith(b"HTTP/1.1 408 "), received


def test_idle_keepalive_connections_are_closed(short_server: DevServer) -> None:
    with _socket(short_server.url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        received = _closed_by_server(sock, within=30)
    assert received.startswith(b"HTTP/1.1 200 "), received  # the answer, then the close


def test_a_stalled_body_is_answered_408(short_server: DevServer) -> None:
    with _socket(short_server.url) as sock:
        sock.sendall(
            b"POST /2015-03-31/functions/echo/invocations HTTP/1.1\r\nHost: x\r\n"
            b'Content-Length: 100\r\n\r\n{"a":'
        )
        received = _closed_by_server(sock, within=30)
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert b"RequestTimeoutException" in received


def test_a_never_ending_chunked_body_is_cut_off(short_server: DevServer) -> None:
    """Chunks keep coming, each well within the idle timeout: the body timeout ends it."""
    with _socket(short_server.url) as sock:
        sock.sendall(
            b"POST /fn/default/echo/ HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        received = _closed_by_server(sock, within=40, keep_sending=b"1\r\nx\r\n")
    assert received.startswith(b"HTTP/1.1 408 "), received
    assert _refusals(short_server.url, "body_timeout") >= 1


def test_bodies_within_the_timeouts_still_work(short_server: DevServer) -> None:
    answer = call(short_server.url, invoke_path("echo"), json.dumps({"n": 1}).encode())
    assert (answer.status, json.loads(answer.body)) == (200, {"n": 1})


# -- the connection cap and split listeners, set with flags ------------------------------------


@pytest.fixture(scope="module")
def split_server() -> Iterator[tuple[DevServer, str]]:
    args = [
        "--listen", "invoke=127.0.0.1:0", "--listen", "trigger=127.0.0.1:0",
        "--max-connections", "8", "--keepalive-timeout", "60",
    ]  # fmt: skip
    with dev_server([FUNCTIONS], args=args) as server:
        lines = [line for line in server.output().splitlines() if "serving HTTP triggers" in line]
        yield server, lines[0].rsplit(" ", 1)[1]


def test_past_the_connection_cap_a_client_gets_429_and_the_connection_closes(
    split_server: tuple[DevServer, str],
) -> None:
    server, trigger_url = split_server
    held = [socket.create_connection(_address(server.url), timeout=30) for _ in range(8)]
    try:
        time.sleep(0.3)  # the gateway accepts them in its own time
        for url in (server.url, trigger_url):  # the cap counts every listener
            with _socket(url) as extra:
                received = _closed_by_server(extra, within=10)
            assert received.startswith(b"HTTP/1.1 429 "), received
            head, _, body = received.partition(b"\r\n\r\n")
            assert b"x-amzn-ErrorType: TooManyRequestsException" in head
            assert json.loads(body)["Reason"] == "ConcurrentInvocationLimitExceeded"
    finally:
        for sock in held:
            sock.close()
    eventually(
        lambda: call(server.url, "/healthz", method="GET").status == 200,
        within=10,
        what="the connections given back",
    )
    assert _refusals(server.url, "connections") >= 2


def test_split_listeners_serve_only_their_own_half(split_server: tuple[DevServer, str]) -> None:
    server, trigger_url = split_server
    invoke_url = server.url
    assert invoke_url != trigger_url
    echo = invoke_path("echo")
    answer = call(invoke_url, echo, b'{"via": "invoke"}')
    assert (answer.status, json.loads(answer.body)) == (200, {"via": "invoke"})
    answer = call(trigger_url, "/fn/default/echo/hi", b"hello")
    assert answer.status == 200 and json.loads(answer.body)["rawPath"] == "/hi", answer
    # Each refuses the other's half, with Lambda's not-found answer.
    for url, path in [(trigger_url, echo), (invoke_url, "/fn/default/echo/hi")]:
        answer = call(url, path, b"{}")
        assert answer.status == 404, answer
        assert answer.headers["x-amzn-errortype"] == "ResourceNotFoundException"
    for path in ("/2015-03-31/functions", "/2015-03-31/functions/echo", "/metrics"):
        assert call(trigger_url, path, method="GET").status == 404
        assert call(invoke_url, path, method="GET").status == 200
    # Probes answer on both.
    for url in (invoke_url, trigger_url):
        for probe in ("/healthz", "/readyz"):
            assert call(url, probe, method="GET").status == 200


def test_bad_listen_and_bound_values_are_refused_with_one_line() -> None:
    for args, words in [
        (["--listen", "invoke=127.0.0.1:0"], "--listen must serve"),
        (["--listen", "public=127.0.0.1:0", "--listen", "all=127.0.0.1:0"], "ROLE=HOST:PORT"),
        (["--max-connections", "none"], "--max-connections='none'"),
    ]:
        done = subprocess.run(
            [KFAAS, "dev", str(FUNCTIONS), *args], capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 2, done
        assert words in done.stderr and "Traceback" not in done.stderr, done.stderr
    done = subprocess.run(
        [KFAAS, "dev", str(FUNCTIONS)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "KFAAS_BODY_MEMORY_BYTES": "lots"},
    )
    assert done.returncode == 2 and "KFAAS_BODY_MEMORY_BYTES='lots'" in done.stderr, done.stderr
