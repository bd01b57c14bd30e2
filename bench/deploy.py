"""Deploy-to-invokable time through the management API, next to its bare limit, in one run.

For N rounds against one `kfaas dev --state DIR` (a subprocess, as users run it):
- **create**: from sending CreateFunction (a small zip) until the first Invoke answers from it;
- **update**: from sending UpdateFunctionCode until an Invoke answers with the new code (the
  client invokes in a loop: what a deploy script waiting for its change would do);
- **bare limit**: a fresh Python process that imports the same handler and calls it once — the
  least any platform that runs the code in a new process must spend.

The ratios (create / bare, update / bare) are what to compare across changes; the absolute
figures depend on the machine. `.venv/bin/python bench/deploy.py [--rounds 10]`
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import zipfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from devserver import dev_server, make_lambda_client

HANDLER = "MARK = {mark!r}\n\ndef handler(event, context):\n    return {{'mark': MARK}}\n"


def package(mark: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        bundle.writestr("app.py", HANDLER.format(mark=mark))
    return buffer.getvalue()


def invoke_until(client: Any, name: str, mark: str, deadline: float) -> None:
    while time.perf_counter() < deadline:
        try:
            answer = client.invoke(FunctionName=name, Payload=b"{}")
        except client.exceptions.ResourceNotFoundException:
            continue
        if json.loads(answer["Payload"].read()) == {"mark": mark}:
            return
    raise RuntimeError(f"{name} never answered with {mark}")


def bare_limit(folder: Path) -> float:
    (folder / "app.py").write_text(HANDLER.format(mark="bare"))
    started = time.perf_counter()
    subprocess.run(
        [sys.executable, "-c", "import app; app.handler({}, None)"], cwd=folder, check=True
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    options = parser.parse_args()
    created: list[float] = []
    updated: list[float] = []
    bare: list[float] = []
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        (root / "manifests").mkdir()
        with dev_server([root / "manifests"], args=["--state", str(root / "state")]) as server:
            client = make_lambda_client(server.url)
            for round_ in range(options.rounds):
                name = f"deploy-{round_}"
                started = time.perf_counter()
                client.create_function(
                    FunctionName=name,
                    Runtime=f"python3.{sys.version_info.minor}",
                    Handler="app.handler",
                    Role="arn:aws:iam::default:role/default",
                    Code={"ZipFile": package("one")},
                )
                invoke_until(client, name, "one", started + 60)
                created.append(time.perf_counter() - started)
                started = time.perf_counter()
                client.update_function_code(FunctionName=name, ZipFile=package("two"))
                invoke_until(client, name, "two", started + 60)
                updated.append(time.perf_counter() - started)
                bare.append(bare_limit(root))
                client.delete_function(FunctionName=name)
    print(f"\n{datetime.now(UTC):%Y-%m-%d}, {platform.node()} ({os.cpu_count()} vCPU), "
          f"kfaas dev, {options.rounds} rounds\n")  # fmt: skip
    print("| step | p50 ms | min ms | max ms | ratio to the bare limit (p50) |")
    print("| --- | --- | --- | --- | --- |")
    limit = statistics.median(bare)
    for label, values in (
        ("create → first answer", created),
        ("update code → new answer", updated),
        ("bare limit: new python, import, call", bare),
    ):
        median = statistics.median(values)
        print(
            f"| {label} | {median * 1000:.0f} | {min(values) * 1000:.0f} | "
            f"{max(values) * 1000:.0f} | {median / limit:.1f} |"
        )


if __name__ == "__main__":
    main()
