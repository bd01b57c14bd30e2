"""The AWS CLI deploy script (examples/aws-cli/deploy.sh) run as written against the cluster.

The same script tests/e2e/test_aws_cli.py runs against kfaas dev, here through the installed
chart's gateway Service: the zip goes to the code store, each published version gets its own
pods, the alias splits traffic between them, and deleting the function removes everything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

from waiting import eventually

from node.kfaas_release import Release

SCRIPT = Path(__file__).parents[2] / "examples" / "aws-cli" / "deploy.sh"
BIN = Path(sys.executable).parent


def test_the_script_deploys_publishes_canaries_shifts_and_deletes_on_the_cluster(
    release: Release,
) -> None:
    release.allow_deploys()
    name = release.qualified(f"cli-{uuid.uuid4().hex[:6]}")
    env = {
        **os.environ,
        **release.aws_environment(),
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "KFAAS_ENDPOINT": release.gateway,
        "FUNCTION_NAME": name,
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    run = subprocess.run(
        ["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=600, check=False
    )
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    lines = run.stdout.splitlines()
    results = [line.partition(" -> ") for line in lines if " -> " in line]
    assert [(who, json.loads(body)) for who, _, body in results[::2]] == [
        (name, {"code": "one", "version": "$LATEST"}),
        (f"{name}:live", {"code": "two", "version": "2"}),
    ]
    assert json.loads(results[1][2]) in (
        {"code": "one", "version": "1"},
        {"code": "two", "version": "2"},
    )
    assert "published versions 1 and 2" in lines and lines[-1] == f"deleted {name}"
    short = name.split("/", 1)[1]

    def gone() -> bool:  # versions and aliases go through the garbage collector, a moment later
        left = release.kubectl(
            "-n", release.namespace, "get", "functions,functionversions,functionaliases",
            "-o", "name", check=False,
        )  # fmt: skip
        return not [line for line in left.splitlines() if short in line]

    eventually(gone, within=60, what=f"{name}'s objects deleted")
