"""Every ObjectStore keeps objects as the API server does (kfaas.object_store's docstring).

The same assertions run on the folder store and, on the kwok control plane, on the Kubernetes
store, so a management handler tested against one behaves alike on the other: the facts
RevisionId and LastModified are read from (uid, generation, managedFields), the preconditions,
the errors, the cascade of deletes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from version_digests import code_sha256
from waiting import eventually_async

from kfaas import object_store as store
from kfaas.lambda_shapes import last_modified, object_facts, revision_id
from kfaas.object_store import Body

from .conftest import CRDS, Subject

HANDLER = "def handler(event, context):\n    return event\n"


def function(namespace: str, name: str, *, memory: Any = 128, **metadata: Any) -> Body:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name, "namespace": namespace, **metadata},
        "spec": {
            "runtime": "python3.12",
            "handler": "app.handler",
            "code": {"inline": {"app.py": HANDLER}},
            "memoryMB": memory,
        },
    }


def mapping(namespace: str, owner: Body | None = None, **metadata: Any) -> Body:
    if owner is not None:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "kfaas.dev/v1alpha1",
                "kind": "Function",
                "name": owner["metadata"]["name"],
                "uid": owner["metadata"]["uid"],
            }
        ]
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"namespace": namespace, **metadata},
        "spec": {"functionName": "f", "kafka": {"bootstrapServers": "k:9092", "topic": "t"}},
    }


def revision(body: Body) -> str:
    facts = object_facts(body)
    return revision_id(facts.uid, facts.generation)


def entry(body: Body, manager: str) -> dict[str, Any]:
    [found] = [e for e in body["metadata"]["managedFields"] if e["manager"] == manager]
    return dict(found)


async def test_create_sets_what_the_api_server_sets(subject: Subject) -> None:
    namespace, name = subject.namespaces[0], subject.name()
    created = await subject.store.create(
        store.FUNCTIONS, function(namespace, name, labels={"team": "a"}),
        field_manager=store.GATEWAY_MANAGER,
    )  # fmt: skip
    assert (created["apiVersion"], created["kind"]) == ("kfaas.dev/v1alpha1", "Function")
    metadata = created["metadata"]
    assert (metadata["name"], metadata["namespace"], metadata["generation"]) == (name, namespace, 1)
    assert metadata["uid"] and isinstance(metadata["resourceVersion"], str)
    assert metadata["labels"] == {"team": "a"}
    assert "f:spec" in entry(created, store.GATEWAY_MANAGER)["fieldsV1"]
    assert created["spec"]["memoryMB"] == 128
    assert last_modified(object_facts(created))  # the creation, in Lambda's format
    assert await subject.store.get(store.FUNCTIONS, namespace, name) == created


async def test_a_second_create_of_a_name_is_refused(subject: Subject) -> None:
    body = function(subject.namespaces[0], subject.name())
    await subject.store.create(store.FUNCTIONS, body, field_manager=store.GATEWAY_MANAGER)
    with pytest.raises(store.AlreadyExists):
        await subject.store.create(store.FUNCTIONS, body, field_manager=store.GATEWAY_MANAGER)


async def test_generate_name_adds_five_characters(subject: Subject) -> None:
    created = await subject.store.create(
        store.EVENT_SOURCE_MAPPINGS, mapping(subject.namespaces[0], generateName="orders-"),
        field_manager=store.GATEWAY_MANAGER,
    )  # fmt: skip
    name = created["metadata"]["name"]
    assert name.startswith("orders-") and len(name) == len("orders-") + 5
    assert (name[-5:].isalnum() and name[-5:].islower()) or name[-5:].isdigit()


async def test_an_invalid_spec_is_refused_naming_its_field(subject: Subject) -> None:
    body = function(subject.namespaces[0], subject.name(), memory="lots")
    with pytest.raises(store.Invalid) as refused:
        await subject.store.create(store.FUNCTIONS, body, field_manager=store.GATEWAY_MANAGER)
    assert refused.value.field == "spec.memoryMB"
    assert "memoryMB" in str(refused.value)


async def test_missing_objects_are_not_found(subject: Subject) -> None:
    namespace = subject.namespaces[0]
    with pytest.raises(store.ObjectNotFound):
        await subject.store.get(store.FUNCTIONS, namespace, "absent")
    with pytest.raises(store.ObjectNotFound):
        await subject.store.delete(store.FUNCTIONS, namespace, "absent")
    with pytest.raises(store.ObjectNotFound):
        await subject.store.write_status(store.FUNCTIONS, namespace, "absent", {"x": 1})
    body = function(namespace, "absent")
    body["metadata"]["resourceVersion"] = "1"
    with pytest.raises(store.ObjectNotFound):
        await subject.store.replace(store.FUNCTIONS, body, field_manager=store.GATEWAY_MANAGER)
    # A name no object can have (it would leave the URL or the folder) is simply not there.
    with pytest.raises(store.ObjectNotFound):
        await subject.store.get(store.FUNCTIONS, namespace, "../etc/passwd")


async def test_an_unknown_kind_is_refused(subject: Subject) -> None:
    with pytest.raises(store.StoreError):
        await subject.store.get("deployments", subject.namespaces[0], "x")


async def test_a_spec_change_bumps_generation_and_revision(subject: Subject) -> None:
    namespace, name = subject.namespaces[0], subject.name()
    created = await subject.store.create(
        store.FUNCTIONS, function(namespace, name), field_manager=store.DEV_FILES_MANAGER
    )
    changed = function(namespace, name, memory=256)
    changed["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    replaced = await subject.store.replace(
        store.FUNCTIONS, changed, field_manager=store.GATEWAY_MANAGER
    )
    assert replaced["metadata"]["generation"] == 2
    assert replaced["metadata"]["uid"] == created["metadata"]["uid"]
    assert replaced["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    assert replaced["spec"]["memoryMB"] == 256
    assert revision(replaced) != revision(created)
    written = entry(replaced, store.GATEWAY_MANAGER)
    assert "f:spec" in written["fieldsV1"]
    assert object_facts(replaced).spec_writes  # LastModified reads this write's time
    assert written["time"] >= created["metadata"]["creationTimestamp"]


async def test_a_stale_or_missing_resource_version_is_refused(subject: Subject) -> None:
    namespace, name = subject.namespaces[0], subject.name()
    created = await subject.store.create(
        store.FUNCTIONS, function(namespace, name), field_manager=store.GATEWAY_MANAGER
    )
    first = function(namespace, name, memory=256)
    first["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    await subject.store.replace(store.FUNCTIONS, first, field_manager=store.GATEWAY_MANAGER)
    second = function(namespace, name, memory=512)
    second["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    with pytest.raises(store.Conflict):
        await subject.store.replace(store.FUNCTIONS, second, field_manager=store.GATEWAY_MANAGER)
    del second["metadata"]["resourceVersion"]
    with pytest.raises(store.Invalid) as refused:
        await subject.store.replace(store.FUNCTIONS, second, field_manager=store.GATEWAY_MANAGER)
    assert refused.value.field == "metadata.resourceVersion"
    live = await subject.store.get(store.FUNCTIONS, namespace, name)
    assert live["spec"]["memoryMB"] == 256


async def test_a_replace_never_writes_status(subject: Subject) -> None:
    namespace, name = subject.namespaces[0], subject.name()
    created = await subject.store.create(
        store.FUNCTIONS, function(namespace, name), field_manager=store.GATEWAY_MANAGER
    )
    body = function(namespace, name, memory=256)
    body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
    body["status"] = {"replicas": 3}
    replaced = await subject.store.replace(store.FUNCTIONS, body, field_manager="someone")
    assert "replicas" not in (replaced.get("status") or {})


async def test_tags_by_their_own_manager_keep_revision_and_last_modified(
    subject: Subject,
) -> None:
    namespace, name = subject.namespaces[0], subject.name()
    created = await subject.store.create(
        store.FUNCTIONS, function(namespace, name, annotations={"note": "x"}),
        field_manager=store.GATEWAY_MANAGER,
    )  # fmt: skip
    tagged = created | {"metadata": dict(created["metadata"])}
    tagged["metadata"]["annotations"] = {"note": "x", "kfaas.dev/tags": '{"team": "a"}'}
    written = await subject.store.replace(store.FUNCTIONS, tagged, field_manager=store.TAGS_MANAGER)
    assert written["metadata"]["annotations"]["kfaas.dev/tags"] == '{"team": "a"}'
    assert written["metadata"]["generation"] == 1
    assert written["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    assert revision(written) == revision(created)
    assert last_modified(object_facts(written)) == last_modified(object_facts(created))
    assert "f:spec" not in entry(written, store.TAGS_MANAGER)["fieldsV1"]


async def test_write_status_merges_top_level_keys(subject: Subject) -> None:
    namespace, name = subject.namespaces[0], subject.name()
    created = await subject.store.create(
        store.FUNCTIONS, function(namespace, name), field_manager=store.GATEWAY_MANAGER
    )
    ready = [{"type": "Ready", "status": "True", "reason": "Ready", "message": ""}]
    await subject.store.write_status(
        store.FUNCTIONS, namespace, name, {"observedGeneration": 1, "conditions": ready}
    )
    later = [{"type": "Ready", "status": "False", "reason": "InvalidSpec", "message": "x"}]
    written = await subject.store.write_status(
        store.FUNCTIONS, namespace, name, {"conditions": later, "codeSha256": "ab"}
    )
    assert written["status"] == {"observedGeneration": 1, "conditions": later, "codeSha256": "ab"}
    assert written["metadata"]["generation"] == 1
    assert written["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
    assert revision(written) == revision(created)
    assert await subject.store.get(store.FUNCTIONS, namespace, name) == written
    # Writing what is there changes nothing, not even the resourceVersion.
    again = await subject.store.write_status(store.FUNCTIONS, namespace, name, {"codeSha256": "ab"})
    assert again["metadata"]["resourceVersion"] == written["metadata"]["resourceVersion"]


async def test_delete_with_a_precondition(subject: Subject) -> None:
    namespace, name = subject.namespaces[0], subject.name()
    created = await subject.store.create(
        store.FUNCTIONS, function(namespace, name), field_manager=store.GATEWAY_MANAGER
    )
    await subject.store.write_status(store.FUNCTIONS, namespace, name, {"replicas": 1})
    with pytest.raises(store.Conflict):
        await subject.store.delete(
            store.FUNCTIONS, namespace, name,
            resource_version=created["metadata"]["resourceVersion"],
        )  # fmt: skip
    live = await subject.store.get(store.FUNCTIONS, namespace, name)
    await subject.store.delete(
        store.FUNCTIONS, namespace, name, resource_version=live["metadata"]["resourceVersion"]
    )
    with pytest.raises(store.ObjectNotFound):
        await subject.store.get(store.FUNCTIONS, namespace, name)


async def test_deleting_an_owner_deletes_what_it_owns(subject: Subject) -> None:
    namespace = subject.namespaces[0]
    owner = await subject.store.create(
        store.FUNCTIONS, function(namespace, subject.name()), field_manager=store.GATEWAY_MANAGER
    )
    owned = await subject.store.create(
        store.EVENT_SOURCE_MAPPINGS, mapping(namespace, owner, name=subject.name("m")),
        field_manager=store.GATEWAY_MANAGER,
    )  # fmt: skip
    kept = await subject.store.create(
        store.EVENT_SOURCE_MAPPINGS, mapping(namespace, name=subject.name("m")),
        field_manager=store.GATEWAY_MANAGER,
    )  # fmt: skip
    await subject.store.delete(store.FUNCTIONS, namespace, owner["metadata"]["name"])

    async def owned_gone() -> bool:
        try:
            await subject.store.get(
                store.EVENT_SOURCE_MAPPINGS, namespace, owned["metadata"]["name"]
            )
        except store.ObjectNotFound:
            return True
        return False

    # The API server's garbage collector deletes in the background; the folder store at once.
    await eventually_async(owned_gone, within=30, what="the owned mapping deleted")
    await subject.store.get(store.EVENT_SOURCE_MAPPINGS, namespace, kept["metadata"]["name"])


async def test_list_sorts_filters_by_label_and_spans_namespaces(subject: Subject) -> None:
    first, second = subject.namespaces
    prefix = subject.name("l")
    for namespace, name, team in (
        (second, f"{prefix}-a", "x"), (first, f"{prefix}-c", "y"), (first, f"{prefix}-b", "x"),
    ):  # fmt: skip
        await subject.store.create(
            store.FUNCTIONS, function(namespace, name, labels={"run": prefix, "team": team}),
            field_manager=store.GATEWAY_MANAGER,
        )  # fmt: skip

    def keys(bodies: list[Body]) -> list[str]:
        return [f"{b['metadata']['namespace']}/{b['metadata']['name']}" for b in bodies]

    everywhere = await subject.store.list(store.FUNCTIONS, labels={"run": prefix})
    assert keys(everywhere) == [
        f"{first}/{prefix}-b",
        f"{first}/{prefix}-c",
        f"{second}/{prefix}-a",
    ]
    assert all(b["kind"] == "Function" for b in everywhere)
    in_first = await subject.store.list(store.FUNCTIONS, first, labels={"run": prefix})
    assert keys(in_first) == [f"{first}/{prefix}-b", f"{first}/{prefix}-c"]
    team_x = await subject.store.list(store.FUNCTIONS, first, labels={"run": prefix, "team": "x"})
    assert keys(team_x) == [f"{first}/{prefix}-b"]


def owned_by(owner: Body) -> list[dict[str, Any]]:
    metadata = owner["metadata"]
    return [
        {"apiVersion": "kfaas.dev/v1alpha1", "kind": "Function", "name": metadata["name"],
         "uid": metadata["uid"]},
    ]  # fmt: skip


async def test_a_published_version_is_immutable_and_goes_with_its_function(
    subject: Subject,
) -> None:
    namespace, name = subject.namespaces[0], subject.name()
    owner = await subject.store.create(
        store.FUNCTIONS, function(namespace, name), field_manager=store.GATEWAY_MANAGER
    )
    version: Body = {
        "metadata": {"name": f"{name}.1", "namespace": namespace,
                     "ownerReferences": owned_by(owner)},
        "spec": {
            "functionName": name, "version": 1, "codeSha256": code_sha256(owner["spec"]),
            "configSha256": "0" * 64,
            "template": owner["spec"],
        },
    }  # fmt: skip
    published = await subject.store.create(
        store.FUNCTION_VERSIONS, version, field_manager=store.GATEWAY_MANAGER
    )
    assert published["kind"] == "FunctionVersion"
    changed = published | {"spec": published["spec"] | {"description": "edited"}}
    with pytest.raises(store.Invalid) as refused:
        await subject.store.replace(
            store.FUNCTION_VERSIONS, changed, field_manager=store.GATEWAY_MANAGER
        )
    assert refused.value.field == "spec"
    assert "immutable" in str(refused.value)
    labelled = published | {"metadata": published["metadata"] | {"labels": {"kept": "yes"}}}
    relabelled = await subject.store.replace(
        store.FUNCTION_VERSIONS, labelled, field_manager=store.GATEWAY_MANAGER
    )
    assert relabelled["metadata"]["generation"] == 1
    alias: Body = {
        "metadata": {"name": f"{name}.live", "namespace": namespace,
                     "ownerReferences": owned_by(owner)},
        "spec": {"functionName": name, "name": "live", "functionVersion": "1"},
    }  # fmt: skip
    await subject.store.create(store.FUNCTION_ALIASES, alias, field_manager=store.GATEWAY_MANAGER)

    await subject.store.delete(store.FUNCTIONS, namespace, name)

    async def children_gone() -> bool:
        for plural in (store.FUNCTION_VERSIONS, store.FUNCTION_ALIASES):
            for body in await subject.store.list(plural, namespace):
                if body["spec"]["functionName"] == name:
                    return False
        return True

    # At once in a folder; by the garbage collector in a cluster.
    await eventually_async(
        children_gone, within=30, what="the version and alias deleted with the function"
    )


async def test_write_status_with_a_resource_version_is_a_precondition(subject: Subject) -> None:
    """What the scheduler's claims stand on (ADR 026): a status written from a stale read is
    refused and writes nothing; of two writers that read the same version, one wins."""
    namespace, name = subject.namespaces[0], subject.name()
    created = await subject.store.create(
        store.FUNCTIONS, function(namespace, name), field_manager=store.GATEWAY_MANAGER
    )
    read = created["metadata"]["resourceVersion"]
    written = await subject.store.write_status(
        store.FUNCTIONS, namespace, name, {"codeSha256": "aa"}, resource_version=read
    )
    with pytest.raises(store.Conflict):
        await subject.store.write_status(
            store.FUNCTIONS, namespace, name, {"codeSha256": "bb"}, resource_version=read
        )
    assert await subject.store.get(store.FUNCTIONS, namespace, name) == written
    # None removes a key, under the precondition too.
    current = written["metadata"]["resourceVersion"]
    removed = await subject.store.write_status(
        store.FUNCTIONS, namespace, name,
        {"codeSha256": None, "observedGeneration": 1}, resource_version=current,
    )  # fmt: skip
    assert "codeSha256" not in removed["status"] and removed["status"]["observedGeneration"] == 1
    # Two writers racing from one read: exactly one of them writes.
    current = removed["metadata"]["resourceVersion"]
    outcomes = await asyncio.gather(
        *(
            subject.store.write_status(
                store.FUNCTIONS, namespace, name, {"codeSha256": digest}, resource_version=current
            )
            for digest in ("cc", "dd")
        ),
        return_exceptions=True,
    )
    won = [outcome for outcome in outcomes if isinstance(outcome, dict)]
    lost = [outcome for outcome in outcomes if isinstance(outcome, store.Conflict)]
    assert (len(won), len(lost)) == (1, 1), outcomes
    live = await subject.store.get(store.FUNCTIONS, namespace, name)
    assert live["status"]["codeSha256"] == won[0]["status"]["codeSha256"]


async def test_a_schedule_claim_replaces_the_last_one_whole(subject: Subject) -> None:
    """A Schedule's status as the scheduler writes it: the claim a mapping replaced whole (no
    field of an older claim left over), removed with None."""
    if subject.kind == "kube" and not (CRDS / "schedules.kfaas.dev.yaml").exists():
        pytest.skip("the Schedule CRD is not generated yet")
    namespace, name = subject.namespaces[0], subject.name("s")
    body = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Schedule",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"scheduleExpression": "rate(5 minutes)", "target": {"functionName": "f"}},
    }
    created = await subject.store.create(store.SCHEDULES, body, field_manager="kfaas-scheduler")
    claim = {
        "tick": "2026-11-30T10:00:00Z", "holder": "a",
        "expires": "2026-11-30T10:00:30Z", "attempts": 3,
    }  # fmt: skip
    written = await subject.store.write_status(
        store.SCHEDULES, namespace, name, {"claim": claim},
        resource_version=created["metadata"]["resourceVersion"],
    )  # fmt: skip
    renewed = {"tick": "2026-11-30T10:05:00Z", "holder": "b", "expires": "2026-11-30T10:05:30Z"}
    written = await subject.store.write_status(
        store.SCHEDULES, namespace, name, {"claim": renewed},
        resource_version=written["metadata"]["resourceVersion"],
    )  # fmt: skip
    # Not the older claim's 3 attempts: the API server fills in the schema's default, 0.
    assert {"attempts": 0, **renewed} == {"attempts": 0, **written["status"]["claim"]}
    done = await subject.store.write_status(
        store.SCHEDULES, namespace, name, {"claim": None, "lastTick": "2026-11-30T10:05:00Z"},
        resource_version=written["metadata"]["resourceVersion"],
    )  # fmt: skip
    assert done["status"] == {"lastTick": "2026-11-30T10:05:00Z"}
