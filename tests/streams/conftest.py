"""Fixtures of the stream tests; the helpers themselves live in `streams.kit`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.kit import KafkaTools, PollerProcess, Project, RedisTools


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


@pytest.fixture
def pollers(tmp_path: Path) -> Iterator[Callable[..., PollerProcess]]:
    started: list[PollerProcess] = []

    def make(mapping: dict[str, Any], gateway_url: str, **env: str) -> PollerProcess:
        poller = PollerProcess(mapping, gateway_url, tmp_path / f"poller-{len(started)}.log", env)
        started.append(poller)
        return poller

    yield make
    for poller in started:
        poller.stop()


@pytest.fixture
def kafka(kafka_service: Any) -> KafkaTools:
    return KafkaTools(kafka_service)


@pytest.fixture
async def redis(redis_service: Any) -> AsyncIterator[RedisTools]:
    tools = RedisTools(redis_service)
    yield tools
    await tools.client.aclose()
