"""The two memory floods of issue 8, with the gateway's bounds at their defaults and switched off.

For each setting, `kfaas dev` serves tests/security/limits_functions and takes (1) 800 Event calls
of 1 MB each, 32 at a time, to a function with reserved concurrency 1 and a 2 s handler, then
(2) 48 concurrent 6 MB sync calls to a function with one slow instance. The gateway process's RSS
(instances are its children, not counted) is sampled every 20 ms; three valid calls go during each
flood. "unbounded" sets every bound so high it never applies: what the issue measured.

Run: .venv/bin/python bench/floods.py
"""

from __future__ import annotations

import platform
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from devserver import dev_server
from security.floods import MB, FloodResult, call, event_flood, invoke_path, sync_flood

FUNCTIONS = Path(__file__).parent.parent / "tests" / "security" / "limits_functions"
SETTINGS = {
    "defaults": {},
    "unbounded": {
        "KFAAS_BODY_MEMORY_BYTES": "64Gi",
        "KFAAS_ASYNC_QUEUE_MAX_BYTES": "64Gi",
        "KFAAS_ASYNC_QUEUE_MAX_EVENTS": "100000000",
    },
}


def row(setting: str, flood: str, result: FloodResult) -> str:
    answers = ", ".join(f"{status}: {n}" for status, n in sorted(result.statuses.items()))
    valid = sum(1 for answer in result.valid_calls if answer.status == 200)
    return (
        f"| {setting} | {flood} | {result.rss_before / MB:.0f} | {result.rss_peak / MB:.0f} | "
        f"{result.rss_after / MB:.0f} | {answers} | {valid}/{len(result.valid_calls)} | "
        f"{result.seconds:.1f} |"
    )


def main() -> None:
    print(f"{platform.node()}, Python {platform.python_version()}, {platform.machine()}")
    print("| bounds | flood | RSS before MB | peak MB | after MB | answers | valid calls | s |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    for setting, env in SETTINGS.items():
        with dev_server([FUNCTIONS], env=env) as server:
            call(server.url, invoke_path("echo"), b"{}")
            pid = server.process.pid
            print(row(setting, "800 x 1 MB Event", event_flood(server.url, pid)), flush=True)
        with dev_server([FUNCTIONS], env=env) as server:
            call(server.url, invoke_path("echo"), b"{}")
            pid = server.process.pid
            print(row(setting, "48 x 6 MB sync", sync_flood(server.url, pid)), flush=True)


if __name__ == "__main__":
    main()
