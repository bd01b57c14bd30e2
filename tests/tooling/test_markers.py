"""Service markers however a service fixture is reached (tests/services/markers.py).

Each case runs a small suite in pytester with the markers plugin and stand-in service fixtures
that record their start in a file, so "`-m "not kafka"` starts no Kafka" is observed, not assumed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

CONFTEST = """
import pytest

pytest_plugins = ["services.markers"]
STARTED = {started!r}


def _start(name):
    with open(STARTED, "a") as record:
        record.write(name + "\\n")
    return name


@pytest.fixture(scope="session")
def kafka_service():
    return _start("kafka")


@pytest.fixture(scope="session")
def redis_service():
    return _start("redis")
"""

INI = """
[pytest]
asyncio_default_fixture_loop_scope = function
markers =
    kafka: stand-in
    redis: stand-in
"""

MARKED_PARAMETERS = """
import pytest


@pytest.fixture(params=[
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("kafka", marks=pytest.mark.kafka),
])
def queue(request):
    return request.getfixturevalue(request.param + "_service")


def test_queue(queue):
    assert queue in ("redis", "kafka")


def test_by_name(kafka_service):
    assert kafka_service == "kafka"
"""

UNMARKED_PARAMETERS = """
import pytest


@pytest.fixture(params=["redis", "kafka"])
def queue(request):
    return request.getfixturevalue(request.param + "_service")


def test_queue(queue):
    pass
"""


def _suite(pytester: pytest.Pytester, tests: str) -> Path:
    started = pytester.path / "started.txt"
    started.write_text("")
    pytester.makeconftest(CONFTEST.format(started=str(started)))
    pytester.makeini(INI)
    pytester.makepyfile(test_queues=tests)
    return started


def test_not_kafka_starts_no_kafka_even_through_getfixturevalue(pytester: pytest.Pytester) -> None:
    started = _suite(pytester, MARKED_PARAMETERS)
    result = pytester.runpytest("-m", "not kafka", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1, deselected=2)
    assert started.read_text().split() == ["redis"]


def test_fixture_names_and_marked_parameters_are_both_marked(pytester: pytest.Pytester) -> None:
    started = _suite(pytester, MARKED_PARAMETERS)
    result = pytester.runpytest("-m", "kafka", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, deselected=1)
    assert started.read_text().split() == ["kafka"]


def test_a_service_reached_without_its_marker_is_refused_before_it_starts(
    pytester: pytest.Pytester,
) -> None:
    started = _suite(pytester, UNMARKED_PARAMETERS)
    result = pytester.runpytest("-m", "not kafka", "-p", "no:cacheprovider")
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        ["*test_queue?redis? reaches the redis_service fixture without the 'redis' marker*"]
    )
    assert started.read_text() == ""
