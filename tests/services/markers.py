"""Service markers: every test that reaches a real service carries that service's marker.

Registered by tests/conftest.py. `-m "not kafka"` must start no Kafka, however a test reaches the
broker. Marking by fixture name at collection covers the tests whose fixture closure names a
service fixture; a fixture reached at run time (`request.getfixturevalue`) is invisible there, so
such a fixture must carry the marker on its parameter (`pytest.param("kafka",
marks=pytest.mark.kafka)`), and a service fixture being set up for a test without its marker is
refused with an error saying so, before anything is started. So a missing marker is a failing test,
never a service silently started under `-m "not …"`.
"""

from __future__ import annotations

from collections.abc import Generator

import pytest

# Which marker each service fixture needs (the markers are declared in pyproject.toml).
MARKERS = {
    "redis_service": "redis",
    "kafka_service": "kafka",
    "pod_kafka_service": "kafka",
    "kwok_service": "kwok",
    "cluster_service": "cluster",
    "kfaas_images": "images",
}

# The test being run: a session fixture's own request names the session, not the test.
_running: list[pytest.Item] = []


def needs(item: pytest.Item, fixture: str) -> bool:
    """Whether ``item`` uses the service ``fixture``: by name, or by the fixture's marker."""
    marker = MARKERS[fixture]
    return (
        fixture in getattr(item, "fixturenames", ()) or item.get_closest_marker(marker) is not None
    )


def missing_marker(item: pytest.Item, fixture: str) -> str | None:
    """The refusal for ``item`` setting up ``fixture`` without its marker, or None if marked."""
    marker = MARKERS[fixture]
    if item.get_closest_marker(marker) is not None:
        return None
    return (
        f"{item.nodeid} reaches the {fixture} fixture without the {marker!r} marker, so "
        f'`-m "not {marker}"` would still start it: give the fixture parameter that leads to it '
        f"marks=pytest.mark.{marker} (pytest.param), or mark the test"
    )


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        for fixture, marker in MARKERS.items():
            if fixture in getattr(item, "fixturenames", ()):
                item.add_marker(marker)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Generator[None, object, object]:
    _running.append(item)
    try:
        return (yield)
    finally:
        _running.pop()


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(fixturedef: pytest.FixtureDef[object]) -> None:
    """Refuse to start a service for a test that lacks its marker (a session fixture starts
    once, for the first test that reaches it)."""
    if fixturedef.argname not in MARKERS or not _running:
        return
    refusal = missing_marker(_running[-1], fixturedef.argname)
    if refusal is not None:
        pytest.fail(refusal, pytrace=False)
