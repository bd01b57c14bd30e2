"""The reconcile's phases over an in-memory API server: what is written, when, and as whom.

The same passes against the real control plane are in test_on_cluster.py; here each rule of the
applier and of the phase runner is shown on its own, in milliseconds.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from kfaas.api_objects import from_api_object, status_differs
from kfaas.kube_clients import KubeError
from kfaas.manifests import EventSourceMapping, Function, ManifestError
from kfaas.operator import names
from kfaas.operator.applier import Applier
from kfaas.operator.conditions import Outcome
from kfaas.operator.config import OperatorConfig
from kfaas.operator.phases import Pass, Phase, run_phases
from kfaas.operator.reconcile import FUNCTION_PHASES, MAPPING_PHASES, reconcile_function
from kfaas.operator.status import Result, function_status

Body = dict[str, Any]
CONFIG = OperatorConfig(image="kfaas:test", runtime_token_key="k")


class Server:
    """Just enough of KubeClient: objects by (plural, namespace, name), writes recorded."""

    def __init__(self) -> None:
        self.objects: dict[tuple[str, str | None, str], Body] = {}
        self.writes: list[tuple[str, str, str | None]] = []
        self.refuse: int | None = None

    def _check(self) -> None:
        if self.refuse is not None:
            raise KubeError(self.refuse, "Forbidden", "deployments is forbidden")

    async def find(self, api_version: str, plural: str, namespace: str | None, name: str) -> Any:
        return copy.deepcopy(self.objects.get((plural, namespace, name)))

    async def list(
        self, api_version: str, plural: str, namespace: str | None = None, **_: Any
    ) -> Body:
        items = [v for (p, ns, _n), v in self.objects.items() if (p, ns) == (plural, namespace)]
        return {"items": copy.deepcopy(items)}

    async def apply(self, body: Body, plural: str, *, field_manager: str | None = None) -> Body:
        self._check()
        meta = body["metadata"]
        key = (plural, meta["namespace"], meta["name"])
        self.writes.append((plural, meta["name"], field_manager))
        merged = _merge(self.objects.get(key, {}), body)
        self.objects[key] = merged
        return copy.deepcopy(merged)

    async def delete(self, api_version: str, plural: str, namespace: str | None, name: str) -> bool:
        self._check()
        self.writes.append((plural, name, "delete"))
        return self.objects.pop((plural, namespace, name), None) is not None


def _merge(live: Body, applied: Body) -> Body:
    """A server-side apply, roughly: the applied fields over the live ones, maps merged."""
    merged = copy.deepcopy(live)
    for key, value in applied.items():
        old = merged.get(key)
        both = isinstance(old, dict) and isinstance(value, dict)
        merged[key] = _merge(old, value) if both else copy.deepcopy(value)  # type: ignore[arg-type]
    return merged


def stored_function(**spec: Any) -> Body:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "thumb", "namespace": "media", "uid": "u-1", "generation": 2},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"inline": {"app.py": "def handler(e, c):\n    return 1\n"}},
        }
        | spec,
    }


def reconcile(server: Server, body: Body) -> Result:
    return asyncio.run(reconcile_function(server, copy.deepcopy(body), CONFIG))  # type: ignore[arg-type]


def test_the_phases_are_named_in_order() -> None:
    assert [p.name for p in FUNCTION_PHASES] == [
        "PodTemplateAllowed", "SpecParsed", "RuntimeAvailable", "CodeStored",
        "ResourcesApplied", "OldCodePruned",
    ]  # fmt: skip
    assert [p.name for p in MAPPING_PHASES] == ["SpecParsed", "FunctionFound", "ResourcesApplied"]


def test_a_second_pass_writes_nothing() -> None:
    server = Server()
    first = reconcile(server, stored_function(scaling={"minInstances": 2}))
    assert [o.type for o in first.outcomes] == [
        "SpecValid", "RuntimeAvailable", "CodeReady", "ResourcesReady",
    ]  # fmt: skip
    assert {o.status for o in first.outcomes} == {"True"}
    assert "Deployment/thumb-fn" in first.written and "media%2Fthumb" in first.extra["url"]
    server.writes.clear()
    again = reconcile(server, stored_function(scaling={"minInstances": 2}))
    assert again.written == [] and server.writes == [] and again.outcomes == first.outcomes


def test_a_new_deployment_starts_at_the_floor_and_hands_replicas_to_the_autoscaler() -> None:
    server = Server()
    result = reconcile(server, stored_function(scaling={"minInstances": 2}))
    deployment_writes = [w for w in server.writes if w[0] == "deployments"]
    assert deployment_writes == [
        ("deployments", "thumb-fn", None),
        ("deployments", "thumb-fn", names.AUTOSCALER_FIELD_MANAGER),
    ]
    assert result.written.count("Deployment/thumb-fn") == 1
    assert result.written.index("Secret/thumb-fn-token") < result.written.index(
        "Deployment/thumb-fn"
    )
    # The autoscaler scales; a spec change re-applies the Deployment without replicas.
    server.objects[("deployments", "media", "thumb-fn")]["spec"]["replicas"] = 7
    server.writes.clear()
    reconcile(server, stored_function(scaling={"minInstances": 2}, memoryMB=256))
    (update,) = [w for w in server.writes if w[0] == "deployments"]
    assert update == ("deployments", "thumb-fn", None)
    assert server.objects[("deployments", "media", "thumb-fn")]["spec"]["replicas"] == 7


def test_an_api_failure_becomes_the_phase_condition_and_later_phases_still_report() -> None:
    server = Server()
    server.refuse = 403
    result = reconcile(server, stored_function())
    code, resources = result.outcomes[2:]
    assert (code.type, code.status, code.reason) == ("CodeReady", "False", "Forbidden")
    assert "check its RBAC" in code.message
    assert (resources.status, resources.reason) == ("Unknown", "WaitingForCode")


def test_an_invalid_spec_ends_the_pass_before_anything_is_written() -> None:
    server = Server()
    result = reconcile(server, stored_function(runtime="cobol"))
    (outcome,) = result.outcomes
    assert (outcome.type, outcome.status, outcome.reason) == ("SpecValid", "False", "InvalidSpec")
    assert "spec.runtime" in outcome.message and server.writes == [] and result.extra == {}


def test_housekeeping_failures_propagate_and_gates_stop() -> None:
    calls: list[str] = []

    async def failing(_: Applier, state: Pass) -> Outcome:
        calls.append("gate")
        return Outcome("Checked", "False", "No")

    async def never(_: Applier, state: Pass) -> None:
        calls.append("never")

    async def housekeeping(_: Applier, state: Pass) -> None:
        raise KubeError(500, "InternalError", "boom")

    state = Pass({"metadata": {"uid": "u", "generation": 1}}, CONFIG)
    gated = (Phase("Check", "Checked", failing, gate=True), Phase("Never", None, never))
    result = asyncio.run(run_phases(gated, Applier(Server()), state))  # type: ignore[arg-type]
    assert calls == ["gate"] and result.generation == 1 and result.failures == result.outcomes
    with pytest.raises(KubeError):
        asyncio.run(
            run_phases((Phase("Prune", None, housekeeping),), Applier(Server()), state)  # type: ignore[arg-type]
        )


def test_old_code_is_pruned_once_the_rollout_is_complete() -> None:
    server = Server()
    reconcile(server, stored_function())
    old = [k for k in server.objects if k[0] == "configmaps"]
    deployment = server.objects[("deployments", "media", "thumb-fn")]
    deployment["metadata"]["generation"] = 1
    deployment["status"] = {"observedGeneration": 1, "replicas": 0, "updatedReplicas": 0}
    new_code = {"app.py": "def handler(e, c):\n    return 2\n"}
    result = reconcile(server, stored_function(code={"inline": new_code}))
    (gone,) = old
    assert f"ConfigMap/{gone[2]}" in result.written and gone not in server.objects


def test_from_api_object_reads_only_api_version_metadata_and_spec() -> None:
    body = stored_function() | {"status": {"anything": 1}}
    del body["kind"]  # Kopf's bodies do not always carry it
    function = from_api_object(body, Function)
    assert function.metadata.name == "thumb" and function.spec.runtime == "python3.11"
    mapping = from_api_object(
        {
            "metadata": {"name": "m", "namespace": "media"},
            "spec": {"functionName": "thumb", "redis": {"url": "redis://r", "stream": "s"}},
        },
        EventSourceMapping,
    )
    assert mapping.spec.function_name == "thumb"
    with pytest.raises(ManifestError, match=r"Function thumb: spec\.runtime"):
        from_api_object(stored_function(runtime="cobol"), Function)


def test_status_differs_ignores_transition_times_and_fields_it_does_not_name() -> None:
    live = {
        "lag": 3,
        "state": "Enabled",
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t1"}],
    }
    same = {
        "lag": 3,
        "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "t2"}],
    }
    assert not status_differs(live, same)
    assert status_differs(live, {"lag": 4})
    assert status_differs(live, {"conditions": [{"type": "Ready", "status": "False"}]})


def test_the_status_is_computed_from_the_pass_and_the_deployment_alone() -> None:
    owner = stored_function()
    result = Result([Outcome("SpecValid", "True", "SpecValid")], 2, {"url": "u"})
    status = function_status(owner, result, None, now="t0")
    assert status["observedGeneration"] == 2 and status["url"] == "u"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"], ready["lastTransitionTime"]) == (
        "Unknown", "DeploymentPending", "t0",
    )  # fmt: skip


async def test_a_status_write_for_an_owner_deleted_after_its_read_reports_nothing() -> None:
    """The owner is read, then deleted before its status is patched: 404 means nothing to report.

    A cluster-wide operator meets this whenever a namespace goes away mid-pass; raising made Kopf
    log a traceback and retry a handler for an object that no longer exists.
    """
    from kfaas.operator.status_writes import write_status

    class Vanishing(Server):
        async def patch(self, *args: Any, **kwargs: Any) -> Body:
            raise KubeError(404, "NotFound", 'functions.kfaas.dev "thumb" not found')

    owner = stored_function()
    owner["metadata"]["resourceVersion"] = "7"
    vanishing = Vanishing()
    vanishing.objects[("functions", "media", "thumb")] = owner
    assert await write_status(vanishing, "Function", "media", "thumb", None) is None  # type: ignore[arg-type]

    class Refusing(Server):
        async def patch(self, *args: Any, **kwargs: Any) -> Body:
            raise KubeError(403, "Forbidden", "functions/status is forbidden")

    refusing = Refusing()
    refusing.objects[("functions", "media", "thumb")] = owner
    with pytest.raises(KubeError):
        await write_status(refusing, "Function", "media", "thumb", None)  # type: ignore[arg-type]
