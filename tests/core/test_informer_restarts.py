"""How an informer rides out API failures under aiokit's guard (``kfaas.kube_clients.Informer``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any, cast

import pytest

from kfaas import aiokit, kube_clients
from kfaas.kube_clients import Body, Informer, KubeClient, KubeError


class FakeApi:
    """Answers lists and watches from scripts: each entry is an answer or an error to raise."""

    def __init__(self, lists: list[Body | Exception], watches: list[list[Body] | Exception]):
        self.lists = lists
        self.watches = watches
        self.listed = 0
        self.exhausted = asyncio.Event()

    async def list(self, api_version: str, plural: str, namespace: str | None = None,
                   *, label_selector: str | None = None) -> Body:  # fmt: skip
        self.listed += 1
        answer = self.lists.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    async def watch(self, api_version: str, plural: str, **_: Any) -> AsyncIterator[Body]:
        if not self.watches:
            self.exhausted.set()
            await asyncio.Event().wait()
        events = self.watches.pop(0)
        if isinstance(events, Exception):
            raise events
        for event in events:
            yield event


def listing(version: str, *names: str) -> Body:
    items = [
        {"metadata": {"namespace": "ns", "name": n, "resourceVersion": version}} for n in names
    ]
    return {"items": items, "metadata": {"resourceVersion": version}}


@pytest.fixture(autouse=True)
def quick_restarts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_clients, "WATCH_RESTART", aiokit.Backoff(first=0.001, most=0.004))


async def run_until_exhausted(api: FakeApi, seen: list[tuple[str, Body | None]]) -> None:
    informer = Informer(
        cast("KubeClient", api), "v1", "things", lambda key, obj: seen.append((key, obj))
    )
    task = asyncio.create_task(informer.run())
    async with asyncio.timeout(30):
        await api.exhausted.wait()
    await aiokit.stop_tasks([task], grace_seconds=0)


async def test_a_watch_gone_too_far_behind_lists_again_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = FakeApi(
        lists=[listing("1", "a", "b"), listing("5", "a")],
        watches=[KubeError(410, "Gone", "too old")],
    )
    seen: list[tuple[str, Body | None]] = []
    await run_until_exhausted(api, seen)
    assert api.listed == 2
    assert ("ns/b", None) in seen  # the deletion missed meanwhile is reported
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


async def test_api_failures_are_logged_and_retried(caplog: pytest.LogCaptureFixture) -> None:
    api = FakeApi(
        lists=[KubeError(503, "ServiceUnavailable", "down"), listing("1", "a"), listing("2", "a")],
        watches=[KubeError(500, "InternalError", "watch broke")],
    )
    await run_until_exhausted(api, [])
    assert api.listed == 3
    messages = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert messages == [
        "watch of things failed, restarting in 0.0 s: 503 ServiceUnavailable: down",
        "watch of things failed, restarting in 0.0 s: 500 InternalError: watch broke",
    ]


async def test_a_malformed_answer_is_logged_with_its_traceback_and_retried(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = FakeApi(lists=[{"items": []}, listing("1")], watches=[])
    await run_until_exhausted(api, [])
    [record] = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert record.levelno == logging.ERROR and record.exc_info is not None


async def test_a_listener_bug_ends_the_informer() -> None:
    def broken(key: str, obj: Body | None) -> None:
        raise RuntimeError("listener bug")

    api = FakeApi(lists=[listing("1", "a")], watches=[])
    informer = Informer(cast("KubeClient", api), "v1", "things", broken)
    with pytest.raises(RuntimeError, match="listener bug"):
        await informer.run()
