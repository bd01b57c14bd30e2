"""Helm for the chart and operator tests: built before the first test (no timeout cuts it)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from services.base import ServiceError

from chart import helm_build

_failure: list[ServiceError] = []


def pytest_collection_finish(session: pytest.Session) -> None:
    wanted = any("helm" in getattr(item, "fixturenames", ()) for item in session.items)
    if not wanted or session.config.option.collectonly:
        return
    capture = session.config.pluginmanager.get_plugin("capturemanager")
    try:
        if capture is not None:
            with capture.global_and_fixture_disabled():
                helm_build.build()
        else:
            helm_build.build()
    except ServiceError as failure:
        _failure.append(failure)


@pytest.fixture(scope="session")
def helm() -> Path:
    """The helm binary (built through the Go module proxy when missing)."""
    if _failure:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(str(_failure[0]), pytrace=False)
        pytest.skip(str(_failure[0]))
    return helm_build.build()
