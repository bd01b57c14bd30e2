"""The AWS CLI deploy script (examples/aws-cli/deploy.sh) run as written against ``kfaas dev``.

The CLI is the judge: AWS CLI v1 from PyPI, with its own waiters, argument parsing and error
handling, deploys a zip, publishes two versions, canaries an alias and deletes it all.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from devserver import dev_server

SCRIPT = Path(__file__).parents[2] / "examples" / "aws-cli" / "deploy.sh"
BIN = Path(sys.executable).parent


def _results(stdout: str) -> list[tuple[str, dict[str, str]]]:
    """The script's `name -> {json}` lines, in order."""
    found = []
    for line in stdout.splitlines():
        name, arrow, body = line.partition(" -> ")
        if arrow:
            found.append((name, json.loads(body)))
    return found


def test_the_script_deploys_publishes_canaries_shifts_and_deletes(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    state = tmp_path / "state"
    with dev_server([manifests], args=["--state", str(state)]) as server:
        env = {
            **os.environ,
            "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
            "KFAAS_ENDPOINT": server.url,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
        run = subprocess.run(
            ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=300
        )
        assert run.returncode == 0, f"{run.stdout}\n{run.stderr}\n{server.output()}"
        results = _results(run.stdout)
        assert results[0] == ("hello-cli", {"code": "one", "version": "$LATEST"})
        assert "published versions 1 and 2" in run.stdout.splitlines()
        canary = results[1]
        assert canary[0] == "hello-cli:live"
        assert canary[1] in ({"code": "one", "version": "1"}, {"code": "two", "version": "2"})
        assert results[2] == ("hello-cli:live", {"code": "two", "version": "2"})
        assert run.stdout.splitlines()[-1] == "deleted hello-cli"
    # Deleting the function deleted its versions and aliases with it.
    leftovers = [p for p in (state / "objects").rglob("*.yaml")]
    assert leftovers == []
