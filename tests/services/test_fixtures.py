"""When a service cannot run here, a developer's run skips its tests and CI's run fails them."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from services.base import MissingDependency
from services.fixtures import _running


class _Unavailable:
    name = "fake"

    @staticmethod
    def build() -> None:
        raise MissingDependency("fake-server is not installed")

    def up(self) -> Mapping[str, str]:
        self.build()
        return {}

    def down(self) -> None:
        pass

    def running(self) -> bool:
        return False

    def environment(self) -> Mapping[str, str]:
        return {}

    def wipe(self) -> None:
        pass


def test_a_missing_tool_skips_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match="fake: fake-server is not installed"):
        next(_running("fake_service", _Unavailable()))


def test_a_missing_tool_fails_in_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true and a service is missing: fake"):
        next(_running("fake_service", _Unavailable()))
