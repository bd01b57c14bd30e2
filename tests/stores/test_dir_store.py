"""The folder store's own promises: one process per folder, whole writes, restarts keep
everything (objects and the resourceVersion counter), cascades and listeners, its clock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from version_digests import code_sha256

from kfaas import dir_store
from kfaas import object_store as store
from kfaas.dir_store import DirectoryObjectStore
from kfaas.lambda_shapes import last_modified, object_facts
from kfaas.object_store import Body

from .test_conformance import function, mapping

NS = "team-a"
GATEWAY = store.GATEWAY_MANAGER


class Clock:
    def __init__(self) -> None:
        self.second = 0

    def __call__(self) -> str:
        self.second += 1
        return f"2026-11-30T06:00:{self.second:02d}.000000Z"


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def opened(tmp_path: Path, clock: Clock) -> Iterator[DirectoryObjectStore]:
    with DirectoryObjectStore.open(tmp_path, clock=clock) as folder:
        yield folder


def files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_a_folder_is_held_by_one_store_at_a_time(tmp_path: Path) -> None:
    first = DirectoryObjectStore.open(tmp_path)
    with pytest.raises(store.StoreError, match="another kfaas dev uses the state directory"):
        DirectoryObjectStore.open(tmp_path)
    first.close()
    DirectoryObjectStore.open(tmp_path).close()


async def test_objects_are_yaml_files_where_the_layout_says(
    opened: DirectoryObjectStore, tmp_path: Path
) -> None:
    created = await opened.create(store.FUNCTIONS, function(NS, "hello"), field_manager=GATEWAY)
    path = tmp_path / "objects" / "functions" / NS / "hello.yaml"
    assert yaml.safe_load(path.read_text()) == created
    assert (tmp_path / "objects" / ".resource-version").read_text().strip() == (
        created["metadata"]["resourceVersion"]
    )


async def test_a_failed_write_leaves_the_old_object_and_no_partial_file(
    opened: DirectoryObjectStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    created = await opened.create(store.FUNCTIONS, function(NS, "hello"), field_manager=GATEWAY)
    before = files(tmp_path)
    path = tmp_path / "objects" / "functions" / NS / "hello.yaml"
    text = path.read_text()

    def crash(source: Any, target: Any) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError, match="disk gone"):
        await opened.write_status(store.FUNCTIONS, NS, "hello", {"replicas": 1})
    monkeypatch.undo()
    assert files(tmp_path) == before  # no temporary file left behind
    assert path.read_text() == text
    assert yaml.safe_load(path.read_text()) == created


def test_leftover_temporary_files_are_removed_at_open(tmp_path: Path) -> None:
    DirectoryObjectStore.open(tmp_path).close()
    folder = tmp_path / "objects" / "functions" / NS
    folder.mkdir(parents=True)
    (folder / ".hello.yaml.x1.tmp").write_text("apiVersion: half of an obj")
    DirectoryObjectStore.open(tmp_path).close()
    assert not list(folder.iterdir())


async def test_a_restart_keeps_objects_and_the_resource_version_counter(tmp_path: Path) -> None:
    with DirectoryObjectStore.open(tmp_path) as first:
        created = await first.create(store.FUNCTIONS, function(NS, "a"), field_manager=GATEWAY)
        doomed = await first.create(store.FUNCTIONS, function(NS, "b"), field_manager=GATEWAY)
        await first.delete(store.FUNCTIONS, NS, "b")  # the highest number is on no object now
    with DirectoryObjectStore.open(tmp_path) as second:
        assert await second.get(store.FUNCTIONS, NS, "a") == created
        again = await second.create(store.FUNCTIONS, function(NS, "c"), field_manager=GATEWAY)
    assert int(again["metadata"]["resourceVersion"]) > int(doomed["metadata"]["resourceVersion"])


def test_an_unreadable_object_file_is_named_at_open(tmp_path: Path) -> None:
    DirectoryObjectStore.open(tmp_path).close()
    folder = tmp_path / "objects" / "functions" / NS
    folder.mkdir(parents=True)
    (folder / "hello.yaml").write_text("metadata: {name: other, namespace: team-a}\n")
    with pytest.raises(store.StoreError, match=r"hello\.yaml"):
        DirectoryObjectStore.open(tmp_path)
    (folder / "hello.yaml").unlink()
    DirectoryObjectStore.open(tmp_path).close()  # the failed open let go of its lock


async def test_last_modified_moves_with_spec_writes_only(
    opened: DirectoryObjectStore, clock: Clock
) -> None:
    created = await opened.create(
        store.FUNCTIONS, function(NS, "f"), field_manager=store.DEV_FILES_MANAGER
    )
    assert created["metadata"]["creationTimestamp"] == "2026-11-30T06:00:01.000000Z"
    assert last_modified(object_facts(created)) == "2026-11-30T06:00:01.000+0000"
    body = function(NS, "f", memory=256, labels={"x": "y"})
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    changed = await opened.replace(store.FUNCTIONS, body, field_manager=GATEWAY)
    assert last_modified(object_facts(changed)) == "2026-11-30T06:00:02.000+0000"
    # A metadata-only write by the manager that wrote the spec keeps its time.
    body["metadata"] |= {
        "labels": {"x": "z"},
        "resourceVersion": changed["metadata"]["resourceVersion"],
    }
    relabelled = await opened.replace(store.FUNCTIONS, body, field_manager=GATEWAY)
    assert relabelled["metadata"]["generation"] == 2
    assert last_modified(object_facts(relabelled)) == "2026-11-30T06:00:02.000+0000"
    assert [e["manager"] for e in relabelled["metadata"]["managedFields"]] == [
        store.DEV_FILES_MANAGER, GATEWAY,
    ]  # fmt: skip
    # Writing what is already there writes nothing, as the API server does.
    body["metadata"]["resourceVersion"] = relabelled["metadata"]["resourceVersion"]
    assert await opened.replace(store.FUNCTIONS, body, field_manager=GATEWAY) == relabelled


async def test_cascade_is_recursive_and_told_to_listeners(opened: DirectoryObjectStore) -> None:
    heard: list[tuple[str, str, Body | None]] = []
    opened.subscribe(lambda plural, key, body: heard.append((plural, key, body)))
    owner = await opened.create(store.FUNCTIONS, function(NS, "f"), field_manager=GATEWAY)
    child = await opened.create(
        store.FUNCTIONS, function(NS, "child", ownerReferences=[{"uid": owner["metadata"]["uid"]}]),
        field_manager=GATEWAY,
    )  # fmt: skip
    await opened.create(
        store.EVENT_SOURCE_MAPPINGS, mapping(NS, child, name="grandchild"), field_manager=GATEWAY
    )
    await opened.write_status(store.FUNCTIONS, NS, "f", {"replicas": 0})
    assert [(p, k, b is not None) for p, k, b in heard] == [
        ("functions", f"{NS}/f", True),
        ("functions", f"{NS}/child", True),
        ("eventsourcemappings", f"{NS}/grandchild", True),
        ("functions", f"{NS}/f", True),
    ]
    assert heard[-1][2] is not None and heard[-1][2]["status"] == {"replicas": 0}
    heard.clear()
    await opened.delete(store.FUNCTIONS, NS, "f")
    assert heard == [
        ("functions", f"{NS}/f", None),
        ("functions", f"{NS}/child", None),
        ("eventsourcemappings", f"{NS}/grandchild", None),
    ]
    assert await opened.list(store.FUNCTIONS) == []
    assert await opened.list(store.EVENT_SOURCE_MAPPINGS) == []


async def test_a_failing_listener_does_not_fail_the_write(
    opened: DirectoryObjectStore, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(plural: str, key: str, body: Body | None) -> None:
        raise RuntimeError("listener bug")

    opened.subscribe(broken)
    await opened.create(store.FUNCTIONS, function(NS, "f"), field_manager=GATEWAY)
    assert (await opened.get(store.FUNCTIONS, NS, "f"))["metadata"]["name"] == "f"
    assert "a store listener failed on functions team-a/f" in caplog.text


async def test_registered_validators_judge_their_kind(
    opened: DirectoryObjectStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    def validate(body: Body) -> None:
        if body["spec"].get("version", 0) < 1:
            raise store.Invalid("spec.version: must be at least 1", "spec.version")

    monkeypatch.setitem(dir_store.VALIDATORS, store.FUNCTION_VERSIONS, validate)
    body: Body = {"metadata": {"name": "f.1", "namespace": NS}, "spec": {"version": 0}}
    with pytest.raises(store.Invalid) as refused:
        await opened.create(store.FUNCTION_VERSIONS, body, field_manager=GATEWAY)
    assert refused.value.field == "spec.version"
    body["spec"]["version"] = 1
    created = await opened.create(store.FUNCTION_VERSIONS, body, field_manager=GATEWAY)
    assert created["kind"] == "FunctionVersion"


async def test_a_version_whose_digest_is_not_its_code_s_is_refused(
    opened: DirectoryObjectStore,
) -> None:
    """kfaas dev's store refuses what no CEL rule can (ADR 031): the digest must be the code's."""
    template = function(NS, "f")["spec"]
    body: Body = {
        "metadata": {"name": "f.1", "namespace": NS},
        "spec": {"functionName": "f", "version": 1, "codeSha256": "c2hh",
                 "configSha256": "0" * 64, "template": template},
    }  # fmt: skip
    with pytest.raises(store.Invalid) as refused:
        await opened.create(store.FUNCTION_VERSIONS, body, field_manager=GATEWAY)
    assert refused.value.field == "spec.codeSha256"
    assert "'c2hh'" in str(refused.value) and repr(code_sha256(template)) in str(refused.value)
    assert await opened.list(store.FUNCTION_VERSIONS) == []
    body["spec"]["codeSha256"] = code_sha256(template)
    created = await opened.create(store.FUNCTION_VERSIONS, body, field_manager=GATEWAY)
    assert created["spec"]["codeSha256"] == code_sha256(template)


@pytest.mark.parametrize(
    ("metadata", "field"),
    [
        ({"name": "../up", "namespace": NS}, "metadata.name"),
        ({"name": "Upper", "namespace": NS}, "metadata.name"),
        ({"name": "f\n", "namespace": NS}, "metadata.name"),
        ({"name": "f", "namespace": f"{NS}\n"}, "metadata.namespace"),
        ({"name": "f", "namespace": "a/b"}, "metadata.namespace"),
        ({"name": "f"}, "metadata.namespace"),
        ({"namespace": NS}, "metadata.name"),
        ({"generateName": "Bad_", "namespace": NS}, "metadata.generateName"),
    ],
)
async def test_names_the_api_server_refuses_are_refused(
    opened: DirectoryObjectStore, tmp_path: Path, metadata: dict[str, str], field: str
) -> None:
    body = function(NS, "x")
    body["metadata"] = metadata
    with pytest.raises(store.Invalid) as refused:
        await opened.create(store.FUNCTIONS, body, field_manager=GATEWAY)
    assert refused.value.field == field
    assert files(tmp_path / "objects") == []


async def test_a_body_of_another_kind_is_refused(opened: DirectoryObjectStore) -> None:
    body = function(NS, "f") | {"kind": "EventSourceMapping"}
    with pytest.raises(store.Invalid) as refused:
        await opened.create(store.FUNCTIONS, body, field_manager=GATEWAY)
    assert refused.value.field == "kind"


async def test_the_model_s_problems_are_all_in_the_message(opened: DirectoryObjectStore) -> None:
    body = function(NS, "f", memory=1)
    body["spec"]["code"] = {"inline": {"a.py": ""}, "image": "x"}
    with pytest.raises(store.Invalid) as refused:
        await opened.create(store.FUNCTIONS, body, field_manager=GATEWAY)
    message = str(refused.value)
    assert message.startswith("Function f is invalid: ")
    assert "spec.memoryMB" in message and "spec.code" in message
    assert refused.value.field is not None and refused.value.field.startswith("spec.")
