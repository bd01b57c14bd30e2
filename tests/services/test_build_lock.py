"""Cached builds under the machine-wide build lock: two builds at once build once, both succeed.

Helm is the cheapest real case: its build (`go install`) is replaced by a stand-in `go` that takes
half a second, records each call and writes the binary where GOBIN says, and the cache goes to a
temporary folder. Everything else is helm_build's own check, lock, check again, partial folder and
rename. Threads exclude each other here as processes do (flock holds per open file).
"""

from __future__ import annotations

import os
import stat
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from chart import helm_build

from services.base import build_lock

FAKE_GO = """#!/bin/sh
echo "$*" >> {calls}
sleep 0.5
printf '#!/bin/sh\\necho helm\\n' > "$GOBIN/helm"
chmod +x "$GOBIN/helm"
"""


def test_two_concurrent_helm_builds_build_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = tmp_path / "calls.txt"
    go = tmp_path / "go"
    go.write_text(FAKE_GO.format(calls=calls))
    go.chmod(go.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(helm_build, "find_go", lambda: go)

    with ThreadPoolExecutor(2) as pool:
        built = list(pool.map(lambda _: helm_build.build(), range(2)))

    assert built[0] == built[1] == helm_build.helm_path()
    assert os.access(built[0], os.X_OK)
    assert len(calls.read_text().splitlines()) == 1, "both runs built Helm"
    assert not list(built[0].parent.parent.glob("*.partial"))


def test_the_build_lock_admits_one_holder_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    inside: list[str] = []
    seen_inside: list[list[str]] = []

    def hold(name: str) -> None:
        with build_lock("thing"):
            inside.append(name)
            seen_inside.append(list(inside))
            time.sleep(0.2)  # the other thread reaches the lock meanwhile
            inside.remove(name)

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(hold, ["a", "b"]))
    assert sorted(map(tuple, seen_inside)) == [("a",), ("b",)]
    assert (tmp_path / "kfaas" / "thing.lock").exists()
