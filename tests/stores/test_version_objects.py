"""Versions and aliases in every ObjectStore: the folder store of kfaas dev refuses what the API
server's CEL rules refuse (a published version's spec replaced, a name that is not its spec's,
Lambda's routing rules), and lets through what it lets through (a version's labels, an alias
moved), so the management handlers meet the same refusals on both."""

from __future__ import annotations

from typing import Any

import pytest
from version_digests import code_sha256

from kfaas import object_store as store
from kfaas.lambda_versions import config_sha256
from kfaas.object_store import Body

from .conftest import Subject

TEMPLATE = {
    "runtime": "python3.12",
    "handler": "app.handler",
    "code": {"inline": {"app.py": "def handler(event, context):\n    return 1\n"}},
}


def version(namespace: str, function: str, number: int = 1, **spec: Any) -> Body:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "FunctionVersion",
        "metadata": {"name": f"{function}.{number}", "namespace": namespace},
        "spec": {
            "functionName": function,
            "version": number,
            "codeSha256": code_sha256(TEMPLATE),
            "configSha256": config_sha256(TEMPLATE),
            "template": TEMPLATE,
        }
        | spec,
    }


def alias(namespace: str, function: str, **spec: Any) -> Body:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "FunctionAlias",
        "metadata": {"name": f"{function}.live", "namespace": namespace},
        "spec": {"functionName": function, "name": "live", "functionVersion": "1"} | spec,
    }


async def test_a_version_spec_is_immutable_its_metadata_is_not(subject: Subject) -> None:
    namespace, function = subject.namespaces[0], subject.name()
    created = await subject.store.create(
        store.FUNCTION_VERSIONS, version(namespace, function), field_manager=store.GATEWAY_MANAGER
    )
    changed = created | {"spec": created["spec"] | {"description": "rewritten"}}
    with pytest.raises(store.Invalid, match="a published version is immutable"):
        await subject.store.replace(
            store.FUNCTION_VERSIONS, changed, field_manager=store.GATEWAY_MANAGER
        )
    labelled = created | {"metadata": created["metadata"] | {"labels": {"team": "a"}}}
    kept = await subject.store.replace(
        store.FUNCTION_VERSIONS, labelled, field_manager=store.GATEWAY_MANAGER
    )
    assert kept["metadata"]["labels"] == {"team": "a"}
    assert kept["metadata"]["generation"] == 1
    assert kept["spec"].get("description", "") == ""


async def test_a_version_is_named_after_its_spec(subject: Subject) -> None:
    namespace, function = subject.namespaces[0], subject.name()
    body = version(namespace, function)
    body["metadata"]["name"] = f"{function}.2"
    with pytest.raises(store.Invalid, match=r"metadata\.name"):
        await subject.store.create(
            store.FUNCTION_VERSIONS, body, field_manager=store.GATEWAY_MANAGER
        )
    pinned = version(namespace, function, template=TEMPLATE | {"code": {"configMap": "c"}})
    with pytest.raises(store.Invalid, match="must be pinned"):
        await subject.store.create(
            store.FUNCTION_VERSIONS, pinned, field_manager=store.GATEWAY_MANAGER
        )


async def test_an_alias_moves_within_lambda_rules(subject: Subject) -> None:
    namespace, function = subject.namespaces[0], subject.name()
    created = await subject.store.create(
        store.FUNCTION_ALIASES,
        alias(namespace, function, routingConfig={"additionalVersionWeights": {"2": 0.25}}),
        field_manager=store.GATEWAY_MANAGER,
    )
    moved = created | {"spec": created["spec"] | {"functionVersion": "3"}}
    replaced = await subject.store.replace(
        store.FUNCTION_ALIASES, moved, field_manager=store.GATEWAY_MANAGER
    )
    assert replaced["spec"]["functionVersion"] == "3"
    assert replaced["metadata"]["generation"] == 2
    latest = replaced | {"spec": replaced["spec"] | {"functionVersion": "$LATEST"}}
    with pytest.raises(store.Invalid, match=r"\$LATEST is not supported for weighted aliases"):
        await subject.store.replace(
            store.FUNCTION_ALIASES, latest, field_manager=store.GATEWAY_MANAGER
        )
    heavy = alias(namespace, subject.name(), routingConfig={"additionalVersionWeights": {"2": 2}})
    with pytest.raises(store.Invalid, match="additionalVersionWeights"):
        await subject.store.create(
            store.FUNCTION_ALIASES, heavy, field_manager=store.GATEWAY_MANAGER
        )
