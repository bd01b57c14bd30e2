"""`kfaas dev`'s state: manifests applied into its store like `kubectl apply`, and what the store's
changes do — the registry fed, the status the operator would write, the code sweep (ADR 024/025).

Real folder stores in a temporary folder; `kfaas dev` itself is in tests/e2e/test_dev_state.py.
"""

from __future__ import annotations

import asyncio
import copy
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from version_digests import code_sha256
from waiting import eventually_async

from kfaas import dir_store
from kfaas import object_store as store
from kfaas.cli.dev_files import (
    APPLIED_FROM,
    CODE_PATH,
    CODE_PATH_SHA256,
    apply_manifests,
    pack_folder,
    reapplied_body,
    removed_from_files,
    state_misplaced,
    stored_body,
)
from kfaas.cli.dev_poller_status import StoredMappingStatus
from kfaas.cli.dev_state import DevObjects
from kfaas.cli.dev_status import function_status, mapping_status
from kfaas.code_digests import CodeDigest
from kfaas.code_folder import DirectoryCodeStore
from kfaas.code_sweep import GRACE_SECONDS
from kfaas.dir_store import DirectoryObjectStore
from kfaas.gateway.registry import FunctionRegistry
from kfaas.interpreters import Interpreters
from kfaas.lambda_code import canonical_zip
from kfaas.lambda_mapping_shapes import mapping_state
from kfaas.lambda_shapes import function_state, object_facts
from kfaas.manifests import EventSourceMapping, Function, ManifestError, load_manifests
from kfaas.pollers.metrics import AUTHENTICATION_FAILED
from kfaas.pollers.status import PollerReport
from kfaas.pollers.status import mapping_status as poller_status

OWN = f"python{sys.version_info.major}.{sys.version_info.minor}"
MISSING = "python3.13" if OWN != "python3.13" else "python3.12"
FUNCTION = f"""
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {{name: NAME, annotations: {{team: blue}}}}
spec:
  runtime: {OWN}
  handler: app.handler
  code: {{path: ./src}}
  environment: {{LABEL: LABEL_VALUE}}
"""
MAPPING = """
apiVersion: kfaas.dev/v1alpha1
kind: EventSourceMapping
metadata: {name: orders}
spec:
  functionName: first
  redis: {url: "redis://127.0.0.1:6379/0", stream: orders}
"""
HANDLER = "def handler(event, context):\n    return 1\n"


def project(folder: Path, *names: str, label: str = "one", mapping: bool = False) -> Path:
    (folder / "src").mkdir(parents=True, exist_ok=True)
    (folder / "src" / "app.py").write_text(HANDLER)
    text = "---".join(
        FUNCTION.replace("NAME", name).replace("LABEL_VALUE", label) for name in names
    )
    (folder / "functions.yaml").write_text(text + ("---" + MAPPING if mapping else ""))
    return folder


def api_function(name: str, **spec: Any) -> dict[str, Any]:
    """A Function as the management API writes it (no file annotation)."""
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"runtime": OWN, "handler": "app.handler", **spec},
    }


@pytest.fixture
async def stores(tmp_path: Path) -> AsyncIterator[tuple[DirectoryObjectStore, DirectoryCodeStore]]:
    objects = DirectoryObjectStore.open(tmp_path / "state")
    yield objects, DirectoryCodeStore(tmp_path / "state" / "code")
    objects.close()


# -- applying files ---------------------------------------------------------------------------


def test_a_code_folder_is_stored_as_the_zip_the_api_would_get(tmp_path: Path) -> None:
    [function] = load_manifests([project(tmp_path / "p", "first")])
    assert isinstance(function, Function)
    package = pack_folder(tmp_path / "p" / "src")
    assert package == canonical_zip({"app.py": HANDLER.encode()})
    from kfaas.cli.dev_files import PackedCode

    digest = CodeDigest.of(package).hex
    body = stored_body(function, PackedCode(tmp_path / "p" / "src", digest, len(package)))
    assert body["spec"]["code"] == {"zip": {"sha256": digest, "size": len(package)}}
    annotations = body["metadata"]["annotations"]
    assert annotations["team"] == "blue"
    assert annotations[APPLIED_FROM] == function.source
    assert annotations[CODE_PATH] == str(tmp_path / "p" / "src")
    assert annotations[CODE_PATH_SHA256] == digest
    assert "memoryMB" not in body["spec"]  # defaults are the model's, as kubectl would send


def test_a_reapply_keeps_what_the_api_wrote_and_drops_stale_file_annotations() -> None:
    live = {
        "metadata": {
            "name": "f",
            "namespace": "default",
            "resourceVersion": "7",
            "annotations": {
                "kfaas.dev/tags": '{"a": "b"}',
                CODE_PATH: "/old",
                CODE_PATH_SHA256: "0" * 64,
                "team": "red",
            },
        }
    }
    applied = {"metadata": {"name": "f", "namespace": "default", "annotations": {"x": "y"}}}
    body = reapplied_body(live, applied)
    assert body["metadata"]["resourceVersion"] == "7"
    assert body["metadata"]["annotations"] == {"kfaas.dev/tags": '{"a": "b"}', "x": "y"}


def test_only_objects_from_files_are_removed_with_them() -> None:
    def body(name: str, *, from_file: bool) -> dict[str, Any]:
        annotations = {APPLIED_FROM: "f.yaml"} if from_file else {}
        return {"metadata": {"name": name, "namespace": "default", "annotations": annotations}}

    live = {
        store.FUNCTIONS: [body("kept", from_file=True), body("gone", from_file=True)],
        store.EVENT_SOURCE_MAPPINGS: [body("api", from_file=False)],
    }
    applied = [(store.FUNCTIONS, "default", "kept")]
    assert removed_from_files(live, applied) == [(store.FUNCTIONS, "default", "gone")]


async def test_apply_creates_changes_and_deletes_like_kubectl_apply(
    tmp_path: Path, stores: tuple[DirectoryObjectStore, DirectoryCodeStore]
) -> None:
    objects, code = stores
    folder = project(tmp_path / "p", "first", "second", mapping=True)
    changed = await apply_manifests(objects, code, load_manifests([folder]))
    assert sorted(changed) == [
        (store.EVENT_SOURCE_MAPPINGS, "default", "orders"),
        (store.FUNCTIONS, "default", "first"),
        (store.FUNCTIONS, "default", "second"),
    ]
    first = await objects.get(store.FUNCTIONS, "default", "first")
    digest = CodeDigest(first["spec"]["code"]["zip"]["sha256"])
    assert await code.exists(digest)
    await objects.create(store.FUNCTIONS, api_function("api", code={"inline": {"app.py": "x"}}),
                         field_manager=store.GATEWAY_MANAGER)  # fmt: skip

    # The same files again: nothing is written, the generation stays.
    assert await apply_manifests(objects, code, load_manifests([folder])) == []
    # A code edit is a spec change: a new zip, a new generation (RevisionId, LastModified).
    (folder / "src" / "app.py").write_text(HANDLER.replace("1", "2"))
    changed = await apply_manifests(objects, code, load_manifests([folder]))
    assert sorted(changed) == [
        (store.FUNCTIONS, "default", "first"),
        (store.FUNCTIONS, "default", "second"),
    ]
    edited = await objects.get(store.FUNCTIONS, "default", "first")
    assert edited["metadata"]["generation"] == 2
    assert edited["spec"]["code"]["zip"]["sha256"] != digest.hex

    # A function removed from the files goes; the one created through the API stays.
    (folder / "functions.yaml").write_text(
        FUNCTION.replace("NAME", "first").replace("LABEL_VALUE", "one")
    )
    changed = await apply_manifests(objects, code, load_manifests([folder]))
    assert sorted(changed) == [
        (store.EVENT_SOURCE_MAPPINGS, "default", "orders"),
        (store.FUNCTIONS, "default", "second"),
    ]
    names = [body["metadata"]["name"] for body in await objects.list(store.FUNCTIONS)]
    assert names == ["api", "first"]


async def test_a_folder_over_the_zip_limit_is_a_manifest_error(
    tmp_path: Path, stores: tuple[DirectoryObjectStore, DirectoryCodeStore]
) -> None:
    objects, _ = stores
    folder = project(tmp_path / "p", "first")
    small = DirectoryCodeStore(tmp_path / "small", max_zipped_bytes=10)
    with pytest.raises(ManifestError, match=r"spec\.code\.path"):
        await apply_manifests(objects, small, load_manifests([folder]))


# -- the status kfaas dev writes --------------------------------------------------------------


def test_status_says_ready_for_the_generation_handed_over() -> None:
    status = function_status(3, "ab" * 32, None, None, "2026-11-30T06:00:00Z")
    assert status["observedGeneration"] == 3
    assert status["codeSha256"] == "ab" * 32
    [ready] = status["conditions"]
    assert (ready["type"], ready["status"], ready["reason"]) == ("Ready", "True", "Ready")
    assert function_state(status, 3) == {"State": "Active", "LastUpdateStatus": "Successful"}
    assert function_state(status, 4)["LastUpdateStatus"] == "InProgress"
    # The same status later keeps its transition time.
    again = function_status(4, "cd" * 32, None, status, "2026-11-30T07:00:00Z")
    assert again["conditions"][0]["lastTransitionTime"] == "2026-11-30T06:00:00Z"


def test_a_mapping_is_enabled_disabled_or_failed_for_its_generation() -> None:
    body: dict[str, Any] = {"metadata": {"generation": 2}, "spec": {"enabled": True}}
    body["status"] = mapping_status(2, True, None, None, "t")
    assert mapping_state(body) == ("Enabled", "User action")
    body["status"] = mapping_status(2, False, None, None, "t")
    assert mapping_state(body)[0] == "Disabled"
    body["status"] = mapping_status(2, True, "no such broker", None, "t")
    assert mapping_state(body) == ("Failed", "no such broker")
    body["status"] = mapping_status(1, True, None, None, "t")
    assert mapping_state(body)[0] == "Updating"  # the pollers have not run generation 2 yet


def polling(status: str, reason: str, message: str) -> dict[str, Any]:
    """The condition a poller writes (kfaas.pollers.status), as the store holds it."""
    return {"type": "Polling", "status": status, "reason": reason, "message": message,
            "lastTransitionTime": "2026-11-30T05:00:00Z"}  # fmt: skip


def test_a_mapping_folds_the_pollers_polling_into_ready_and_state() -> None:
    refused = polling("False", "AuthenticationFailed", "SASL authentication failed for 'u'")
    body: dict[str, Any] = {"metadata": {"generation": 2}, "spec": {"enabled": True}}
    body["status"] = mapping_status(2, True, None, {"conditions": [refused]}, "t")
    assert body["status"]["state"] == "Failed"
    kept, ready = body["status"]["conditions"]
    assert kept == refused  # the pollers' condition, as they wrote it
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False", "AuthenticationFailed", "SASL authentication failed for 'u'")  # fmt: skip
    assert mapping_state(body) == ("Failed", "SASL authentication failed for 'u'")
    # Readable again: Enabled, Ready saying what kfaas dev does, a new transition time.
    fixed = polling("True", "Polling", "polling; no batch delivered yet")
    again = mapping_status(2, True, None, {**body["status"], "conditions": [fixed, ready]}, "u")
    assert again["state"] == "Enabled"
    assert [(c["type"], c["status"], c["reason"]) for c in again["conditions"]] == [
        ("Polling", "True", "Polling"), ("Ready", "True", "PollersReady")]  # fmt: skip
    assert again["conditions"][1]["lastTransitionTime"] == "u"


def test_a_disabled_or_refused_mapping_is_not_judged_by_a_stale_report() -> None:
    stale = {"conditions": [polling("False", "SourceUnreachable", "redis: connection refused")]}
    disabled = mapping_status(2, False, None, stale, "t")
    assert disabled["state"] == "Disabled"
    assert disabled["conditions"][-1]["reason"] == "Disabled"
    # A mapping that cannot start says why, before any report of its pollers.
    broken = mapping_status(2, True, "no such broker", stale, "t")
    assert broken["state"] == "Failed"
    assert broken["conditions"][-1]["message"] == "no such broker"


def test_a_failure_keeps_the_code_that_ran() -> None:
    failed = function_status(1, "ab" * 32, ("RuntimeNotAvailable", "no python3.13"), None, "t")
    assert "codeSha256" not in failed
    state = function_state(failed, 1)
    assert (state["State"], state.get("StateReasonCode")) == ("Failed", "InvalidRuntime")
    assert state.get("StateReason") == "no python3.13"
    served = {**failed, "codeSha256": "ab" * 32}
    assert function_state(served, 1)["State"] == "Active"


# -- the store's changes at work --------------------------------------------------------------


async def settled(objects: DirectoryObjectStore, name: str, generation: int) -> dict[str, Any]:
    """The function once its status is written for ``generation``."""
    for _ in range(200):
        body = await objects.get(store.FUNCTIONS, "default", name)
        if (body.get("status") or {}).get("observedGeneration") == generation:
            return body
        await asyncio.sleep(0.01)
    raise AssertionError(f"no status for generation {generation}: {body.get('status')}")


@pytest.fixture
async def feed(
    tmp_path: Path, stores: tuple[DirectoryObjectStore, DirectoryCodeStore]
) -> AsyncIterator[tuple[DevObjects, FunctionRegistry, list[list[EventSourceMapping]]]]:
    objects, code = stores
    registry = FunctionRegistry()
    interpreters = Interpreters(tmp_path / "scratch", which=lambda _: None)
    dev = DevObjects(objects, code, registry, interpreters)
    updates: list[list[EventSourceMapping]] = []

    async def update(mappings: list[EventSourceMapping]) -> dict[str, str]:
        updates.append(mappings)
        # A mapping named "broken" cannot start, as a bad one cannot in the pollers.
        return {m.key: "cannot reach it" for m in mappings if m.metadata.name == "broken"}

    objects.subscribe(dev.changed)
    dev.start(update)
    yield dev, registry, updates
    await dev.stop()


async def test_a_function_created_in_the_store_is_served_and_becomes_active(
    feed: tuple[DevObjects, FunctionRegistry, list[list[EventSourceMapping]]],
) -> None:
    dev, registry, _ = feed
    package = canonical_zip({"app.py": HANDLER.encode()})
    digest = await dev.code.put(package)
    spec = {"code": {"zip": {"sha256": digest.hex, "size": len(package)}}}
    await dev.objects.create(store.FUNCTIONS, api_function("zipped", **spec),
                             field_manager=store.GATEWAY_MANAGER)  # fmt: skip
    function = registry.get("default/zipped")
    facts = registry.facts("default/zipped")
    assert facts.code is not None and facts.code.sha256 == digest.lambda_form
    body = await settled(dev.objects, "zipped", 1)
    assert body["status"]["codeSha256"] == digest.hex
    assert function_state(body["status"], 1)["State"] == "Active"
    # Its code runs from the zip unpacked once in the code store.
    root = await dev.code_root(function)
    assert root == dev.code.tree_path(digest)
    assert root is not None and (root / "app.py").read_text() == HANDLER
    # The registry's facts follow the status (State for GetFunction).
    assert object_facts(body).status == registry.facts("default/zipped").object.status
    await dev.objects.delete(store.FUNCTIONS, "default", "zipped")
    assert registry.find("default/zipped") is None


async def test_a_runtime_not_here_fails_instead_of_stopping_kfaas_dev(
    feed: tuple[DevObjects, FunctionRegistry, list[list[EventSourceMapping]]],
) -> None:
    dev, registry, _ = feed
    body = api_function("later", code={"inline": {"app.py": HANDLER}})
    body["spec"]["runtime"] = MISSING
    await dev.objects.create(store.FUNCTIONS, body, field_manager=store.GATEWAY_MANAGER)
    settled_body = await settled(dev.objects, "later", 1)
    [ready] = settled_body["status"]["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "RuntimeNotAvailable")
    assert MISSING in ready["message"]
    assert registry.find("default/later") is not None  # GetFunction shows why


async def test_a_folder_function_runs_in_its_folder_until_the_api_changes_its_code(
    tmp_path: Path, feed: tuple[DevObjects, FunctionRegistry, list[list[EventSourceMapping]]]
) -> None:
    dev, registry, _ = feed
    folder = project(tmp_path / "p", "first")
    await apply_manifests(dev.objects, dev.code, load_manifests([folder]))
    assert await dev.code_root(registry.get("default/first")) == folder / "src"
    package = canonical_zip({"app.py": b"def handler(e, c):\n    return 'api'\n"})
    digest = await dev.code.put(package)
    live = await dev.objects.get(store.FUNCTIONS, "default", "first")
    live["spec"]["code"] = {"zip": {"sha256": digest.hex, "size": len(package)}}
    await dev.objects.replace(store.FUNCTIONS, live, field_manager=store.GATEWAY_MANAGER)
    assert await dev.code_root(registry.get("default/first")) == dev.code.tree_path(digest)


async def test_mappings_reach_the_pollers_from_the_store(
    tmp_path: Path, feed: tuple[DevObjects, FunctionRegistry, list[list[EventSourceMapping]]]
) -> None:
    dev, _, updates = feed
    folder = project(tmp_path / "p", "first", mapping=True)
    await apply_manifests(dev.objects, dev.code, load_manifests([folder]))
    for _ in range(200):
        if updates and [m.key for m in updates[-1]] == ["default/orders"]:
            break
        await asyncio.sleep(0.01)
    assert [m.key for m in updates[-1]] == ["default/orders"]
    # As the operator would: the state of the generation the pollers run.
    for _ in range(200):
        body = await dev.objects.get(store.EVENT_SOURCE_MAPPINGS, "default", "orders")
        if body.get("status"):
            break
        await asyncio.sleep(0.01)
    assert mapping_state(body) == ("Enabled", "User action")
    broken = copy.deepcopy(body)
    broken["metadata"] = {"name": "broken", "namespace": "default"}
    await dev.objects.create(store.EVENT_SOURCE_MAPPINGS, broken, field_manager="test")
    for _ in range(200):
        body = await dev.objects.get(store.EVENT_SOURCE_MAPPINGS, "default", "broken")
        if body.get("status"):
            break
        await asyncio.sleep(0.01)
    assert mapping_state(body) == ("Failed", "cannot reach it")
    await dev.objects.delete(store.EVENT_SOURCE_MAPPINGS, "default", "broken")
    await dev.objects.delete(store.EVENT_SOURCE_MAPPINGS, "default", "orders")
    for _ in range(200):
        if updates[-1] == []:
            break
        await asyncio.sleep(0.01)
    assert updates[-1] == []


async def mapping_when(objects: DirectoryObjectStore, name: str, state: str) -> dict[str, Any]:
    """The mapping once kfaas dev's status says ``state``."""

    async def reached() -> bool:
        body = await objects.get(store.EVENT_SOURCE_MAPPINGS, "default", name)
        return (body.get("status") or {}).get("state") == state

    await eventually_async(reached, within=5, what=f"mapping {name} {state}")
    return await objects.get(store.EVENT_SOURCE_MAPPINGS, "default", name)


async def test_a_pollers_report_that_the_source_is_unreadable_fails_the_mapping(
    tmp_path: Path, feed: tuple[DevObjects, FunctionRegistry, list[list[EventSourceMapping]]]
) -> None:
    """The pollers write through kfaas dev's store as a pod writes to the API server; the next
    status kfaas dev writes folds their Polling in, and back once they read again (ADR 032)."""
    dev, _, _ = feed
    folder = project(tmp_path / "p", "first", mapping=True)
    await apply_manifests(dev.objects, dev.code, load_manifests([folder]))
    body = await mapping_when(dev.objects, "orders", "Enabled")
    reports = StoredMappingStatus(dev.objects, "default", "orders")
    problem = "Kafka: SASL authentication failed for user 'u'"
    refused = PollerReport(None, None, None, problem, AUTHENTICATION_FAILED)
    now = datetime.now(UTC)
    live = body["status"]
    await reports.write(poller_status(refused, live, now=now), body["metadata"]["resourceVersion"])
    body = await mapping_when(dev.objects, "orders", "Failed")
    assert mapping_state(body) == ("Failed", problem)
    conditions = {c["type"]: c for c in body["status"]["conditions"]}
    assert (conditions["Ready"]["status"], conditions["Ready"]["reason"]) == (
        "False", AUTHENTICATION_FAILED)  # fmt: skip
    assert conditions["Polling"]["message"] == problem  # kept as the pollers wrote it
    reading = PollerReport(0, None, None, None)
    version = body["metadata"]["resourceVersion"]
    await reports.write(poller_status(reading, body["status"], now=now), version)
    body = await mapping_when(dev.objects, "orders", "Enabled")
    assert mapping_state(body) == ("Enabled", "User action")


async def test_the_sweep_keeps_what_functions_name(
    feed: tuple[DevObjects, FunctionRegistry, list[list[EventSourceMapping]]],
) -> None:
    dev, _, _ = feed
    used = canonical_zip({"app.py": HANDLER.encode()})
    unused = canonical_zip({"app.py": b"x = 1\n"})
    kept, gone = await dev.code.put(used), await dev.code.put(unused)
    spec = {"code": {"zip": {"sha256": kept.hex, "size": len(used)}}}
    await dev.objects.create(store.FUNCTIONS, api_function("used", **spec),
                             field_manager=store.GATEWAY_MANAGER)  # fmt: skip
    later = dev.code.blob_path(kept).stat().st_mtime + GRACE_SECONDS + 1
    assert await dev.collect_garbage(now=later) == [gone]
    assert await dev.code.exists(kept)
    assert not await dev.code.exists(gone)


def test_the_state_folder_is_no_part_of_a_code_folder(tmp_path: Path) -> None:
    (tmp_path / "app.py").write_text(HANDLER)
    before = pack_folder(tmp_path)
    (tmp_path / ".kfaas" / "objects").mkdir(parents=True)
    (tmp_path / ".kfaas" / "objects" / "f.yaml").write_text("written at every status change")
    assert pack_folder(tmp_path) == before


def test_a_state_folder_read_as_manifests_or_code_is_refused(tmp_path: Path) -> None:
    folder = project(tmp_path / "p", "first")
    manifests = load_manifests([folder])
    assert state_misplaced(folder / ".kfaas", [folder], manifests) is None
    assert state_misplaced(tmp_path / "state", [folder], manifests) is None
    assert state_misplaced(folder / "src" / ".kfaas", [folder], manifests) is None
    refused = state_misplaced(folder / "state", [folder], manifests)
    assert refused is not None and "read as manifests" in refused
    refused = state_misplaced(folder / "src" / ".state", [folder / "functions.yaml"], manifests)
    assert refused is not None and "the code of Function default/first" in refused


async def test_a_version_edited_by_hand_to_another_digest_is_not_served(
    feed: tuple[DevObjects, FunctionRegistry, list[list[EventSourceMapping]]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """ADR 031: a state file whose codeSha256 is not its code's (the store refuses a write of
    one, a hand edit of the file gets past it) runs nothing and says why, as the operator does."""
    dev, registry, _ = feed
    monkeypatch.setitem(dir_store.VALIDATORS, store.FUNCTION_VERSIONS, lambda body: None)
    template = {"runtime": OWN, "handler": "app.handler", "code": {"inline": {"app.py": HANDLER}}}
    actual = code_sha256(template)
    for number, digest in ((1, actual), (2, "c2hh")):
        body = {
            "metadata": {"name": f"edited.{number}", "namespace": "default"},
            "spec": {"functionName": "edited", "version": number, "codeSha256": digest,
                     "configSha256": "0" * 64, "template": template},
        }  # fmt: skip
        await dev.objects.create(store.FUNCTION_VERSIONS, body, field_manager="kubectl")
    facts = registry.facts("default/edited:1")
    assert facts.code is not None and facts.code.sha256 == actual
    assert registry.find("default/edited:2") is None

    async def status(name: str) -> dict[str, Any] | None:
        body = await dev.objects.get(store.FUNCTION_VERSIONS, "default", name)
        return body.get("status")

    mismatched = await eventually_async(lambda: status("edited.2"), within=5, what="a status")
    [ready] = mismatched["conditions"]
    assert (ready["status"], ready["reason"]) == ("False", "CodeMismatch")
    assert "'c2hh'" in ready["message"] and repr(actual) in ready["message"]
    assert "codeSha256" not in mismatched  # no code of it ever ran
    served = await eventually_async(lambda: status("edited.1"), within=5, what="a status")
    assert served["codeSha256"]  # the operator's hex digest of the files that run
