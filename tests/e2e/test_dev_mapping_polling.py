"""`kfaas dev` folds its pollers' `Polling` condition into a mapping's Ready and State (ADR 032).

The real `kfaas dev` as a subprocess, boto3 as the client, a Redis source nobody listens on: the
pollers report `Polling=False` (SourceUnreachable) and the mapping reads `Failed` with that
message, as in a cluster where the operator folds it; a disabled mapping to the same source stays
`Disabled` (no poller runs, so nothing is judged).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from devserver import dev_server, make_lambda_client
from waiting import eventually

HANDLER = "def handler(event, context):\n    return None\n"


def documents(enabled: bool, name: str) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "kfaas.dev/v1alpha1",
            "kind": "EventSourceMapping",
            "metadata": {"name": name},
            "spec": {
                "functionName": "sink",
                "enabled": enabled,
                # Port 1: nothing listens, every connect is refused.
                "redis": {"url": "redis://127.0.0.1:1/0", "stream": "s", "consumerGroup": "g"},
            },
        }
    ]


def project(folder: Path) -> Path:
    (folder / "src").mkdir(parents=True)
    (folder / "src" / "app.py").write_text(HANDLER)
    function = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "sink"},
        "spec": {"runtime": "python3.11", "handler": "app.handler", "code": {"path": "./src"}},
    }
    everything = [function, *documents(True, "unreachable"), *documents(False, "off")]
    (folder / "all.yaml").write_text(yaml.safe_dump_all(everything, sort_keys=False))
    return folder


def names(state: Path) -> dict[str, str]:
    """Each stored mapping's name by its UUID (its metadata.uid)."""
    bodies = [
        yaml.safe_load(path.read_text()) for path in state.rglob("eventsourcemappings/*/*.yaml")
    ]
    return {body["metadata"]["uid"]: body["metadata"]["name"] for body in bodies}


def test_an_unreachable_source_fails_the_mapping_and_a_disabled_one_stays_disabled(
    tmp_path: Path,
) -> None:
    state = tmp_path / "state"
    env = {"KFAAS_POLLER_STATUS_SECONDS": "1"}
    with dev_server([project(tmp_path / "p")], env=env, args=["--state", str(state)]) as dev:
        client = make_lambda_client(dev.url)

        def shown(state_wanted: str) -> dict[str, dict[str, Any]] | None:
            listed = client.list_event_source_mappings(FunctionName="sink")["EventSourceMappings"]
            by_name = {names(state)[m["UUID"]]: m for m in listed}
            return by_name if by_name["unreachable"]["State"] == state_wanted else None

        mappings = eventually(lambda: shown("Failed"), within=30, what="State Failed")
        failed = mappings["unreachable"]
        assert "redis" in failed["StateTransitionReason"].lower()
        assert failed["LastProcessingResult"].startswith("PROBLEM: Connection error")
        assert mappings["off"]["State"] == "Disabled"
        # What `kubectl get` would read: Ready False with Polling's reason, Polling as written.
        [stored] = state.rglob("eventsourcemappings/default/unreachable.yaml")
        conditions = {c["type"]: c for c in yaml.safe_load(stored.read_text())["status"][
            "conditions"]}  # fmt: skip
        assert conditions["Polling"]["status"] == "False"
        assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == (
            "False", "SourceUnreachable")  # fmt: skip
        assert conditions["Ready"]["message"] == conditions["Polling"]["message"]
