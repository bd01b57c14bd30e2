"""The scheduler's HTTP delivery: one `Event` invocation per tick on the gateway's Invoke API, with
the ServiceAccount token, and every answer mapped onto the engine's two failures; a real
`kfaas dev` accepts it (202) and the function runs with the payload."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from devserver import dev_server
from waiting import eventually

from kfaas.gateway_tokens import token_file_authorization
from kfaas.scheduler.delivery import RefusedDelivery, RetryableDelivery
from kfaas.scheduler.http_delivery import HttpDelivery, answer_error, invocation_path


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (202, None),
        (200, None),
        (429, RetryableDelivery),
        (408, RetryableDelivery),
        (500, RetryableDelivery),
        (502, RetryableDelivery),
        (503, RetryableDelivery),
        (404, RefusedDelivery),
        (400, RefusedDelivery),
        (413, RefusedDelivery),
        (401, RefusedDelivery),
        (403, RefusedDelivery),
    ],
)
def test_each_answer_is_done_retryable_or_refused(
    status: int, expected: type[Exception] | None
) -> None:
    body = b'{"Type": "User", "message": "Function not found: arn:aws:lambda:f"}'
    error = answer_error(status, body, "team-a/report")
    if expected is None:
        assert error is None
        return
    assert type(error) is expected
    assert error is not None and error.status == status
    assert str(error) == (
        f"team-a/report: the gateway answered {status} User: Function not found: arn:aws:lambda:f"
    )


def test_a_body_that_is_not_a_lambda_error_is_quoted_short() -> None:
    error = answer_error(502, b"<html>" + b"x" * 1000, "ns/f")
    assert error is not None and len(str(error)) < 400 and "<html>" in str(error)


def test_paths_encode_the_namespace_and_qualifier() -> None:
    assert invocation_path("", "team-a", "report", None) == (
        "/2015-03-31/functions/team-a%2Freport/invocations"
    )
    assert invocation_path("/kfaas/", "ns", "f", "$LATEST") == (
        "/kfaas/2015-03-31/functions/ns%2Ff/invocations?Qualifier=%24LATEST"
    )


class Gateway:
    """An Invoke API that records each request and answers ``status``."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.status = 202

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append(
            {
                "path": request.path_qs,
                "raw_path": request.raw_path,
                "headers": dict(request.headers),
                "body": await request.read(),
            }
        )
        return web.json_response({"Type": "Service", "message": "busy"}, status=self.status)


@pytest.fixture
async def gateway(unused_tcp_port: int) -> AsyncIterator[tuple[Gateway, str]]:
    fake = Gateway()
    app = web.Application()
    app.router.add_post("/{tail:.*}", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", unused_tcp_port).start()
    yield fake, f"http://127.0.0.1:{unused_tcp_port}"
    await runner.cleanup()


async def test_a_tick_is_one_event_invocation_with_the_token(
    gateway: tuple[Gateway, str], tmp_path: Path
) -> None:
    fake, url = gateway
    token = tmp_path / "token"
    token.write_text("sa-token\n")
    delivery = HttpDelivery(url, authorization=token_file_authorization(token))
    try:
        await delivery.invoke_async("team-a", "report", "live", b'{"id": "1"}')
        await delivery.invoke_async("team-a", "report", None, b"{}")
        fake.status = 429
        with pytest.raises(RetryableDelivery) as throttled:
            await delivery.invoke_async("team-a", "report", None, b"{}")
        assert throttled.value.status == 429
        fake.status = 404
        with pytest.raises(RefusedDelivery):
            await delivery.invoke_async("team-a", "gone", None, b"{}")
    finally:
        await delivery.close()
    first, second = fake.requests[:2]
    assert first["raw_path"] == "/2015-03-31/functions/team-a%2Freport/invocations?Qualifier=live"
    assert first["headers"]["X-Amz-Invocation-Type"] == "Event"
    assert first["headers"]["Authorization"] == "Bearer sa-token"
    assert first["body"] == b'{"id": "1"}'
    assert second["path"].endswith("/invocations")


async def test_an_unreachable_gateway_is_retryable(unused_tcp_port: int) -> None:
    delivery = HttpDelivery(f"http://127.0.0.1:{unused_tcp_port}")
    try:
        with pytest.raises(RetryableDelivery) as unreachable:
            await delivery.invoke_async("ns", "f", None, b"{}")
    finally:
        await delivery.close()
    assert unreachable.value.status == 0 and "cannot be reached" in str(unreachable.value)


def test_only_plain_http_gateways() -> None:
    for url in ("https://gw:8443", "gw:8080", ""):
        with pytest.raises(ValueError, match="must be http://host"):
            HttpDelivery(url)


FUNCTION = """\
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {name: ticks}
spec:
  runtime: python3.11
  handler: app.handler
  code:
    inline:
      app.py: |
        import json, os
        def handler(event, context):
            with open(os.environ["TICKS_FILE"], "a") as out:
                out.write(json.dumps(event) + "\\n")
  environment:
    TICKS_FILE: "{ticks}"
"""


async def test_kfaas_dev_accepts_the_event_and_runs_the_function(tmp_path: Path) -> None:
    ticks = tmp_path / "ticks.jsonl"
    (tmp_path / "fn.yaml").write_text(FUNCTION.replace("{ticks}", str(ticks)))
    with dev_server([tmp_path / "fn.yaml"]) as server:
        delivery = HttpDelivery(server.url)
        try:
            await delivery.invoke_async("default", "ticks", None, b'{"id": "tick-1"}')
            with pytest.raises(RefusedDelivery) as missing:
                await delivery.invoke_async("default", "nothing", None, b"{}")
            assert missing.value.status == 404
        finally:
            await delivery.close()

        def ran() -> bool:
            return ticks.exists() and bool(ticks.read_text())

        await asyncio.to_thread(eventually, ran, within=30, what="the function ran")
    assert json.loads(ticks.read_text()) == {"id": "tick-1"}
