"""`scripts/services` as a developer uses it: exports on stdout, detached services, data kept
across down and up until wiped. Redis stands in for all three: it is the quickest to start."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from services.fixtures import _in_ci

pytestmark = pytest.mark.redis

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "services"


@pytest.fixture
def state_dir(tmp_path: Path) -> Iterator[Path]:
    if shutil.which("redis-server") is None:
        if _in_ci():
            pytest.fail("CI=true and redis-server is missing", pytrace=False)
        pytest.skip("redis-server is not installed (scripts/setup installs it)")
    yield tmp_path
    subprocess.run([SCRIPT, "down"], env=_env(tmp_path), capture_output=True, check=False)


def _env(state_dir: Path) -> dict[str, str]:
    return dict(os.environ, KFAAS_SERVICES_DIR=str(state_dir))


def _services(state_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [SCRIPT, *args], env=_env(state_dir), capture_output=True, text=True, check=True, timeout=60
    )


def _exports(stdout: str) -> dict[str, str]:
    pairs = [line.removeprefix("export ").split("=", 1) for line in stdout.splitlines()]
    return {key: value for key, value in pairs}


def test_up_prints_exports_and_data_survives_down_and_up(state_dir: Path) -> None:
    started = _services(state_dir, "up", "redis")
    assert all(line.startswith("export ") for line in started.stdout.splitlines())
    url = _exports(started.stdout)["REDIS_URL"]
    assert url.startswith("redis://127.0.0.1:")
    # The script has exited; the server it started runs on.
    with redis.Redis.from_url(url) as client:
        client.set("kept", "yes")
    assert "redis: running" in _services(state_dir, "status", "redis").stdout

    _services(state_dir, "down")
    assert "redis: stopped" in _services(state_dir, "status").stdout
    again = _exports(_services(state_dir, "up", "redis").stdout)["REDIS_URL"]
    assert again == url
    with redis.Redis.from_url(again) as client:
        assert client.get("kept") == b"yes"

    _services(state_dir, "wipe", "redis")
    assert not (state_dir / "redis").exists()
    assert _services(state_dir, "env").stdout == ""


def test_unknown_service_is_refused(state_dir: Path) -> None:
    refused = subprocess.run(
        [SCRIPT, "up", "postgres"], env=_env(state_dir), capture_output=True, text=True
    )
    assert refused.returncode == 2
    assert "unknown service postgres" in refused.stderr
    assert refused.stdout == ""
