"""RBAC on the version and alias operations (ADR 024's table): each asks for its verb on
``functionversions`` or ``functionaliases``, naming the object (``<fn>.<N>``, ``<fn>.<alias>``)
where there is one, and a caller without it gets AccessDeniedException naming the Lambda action
before anything is read or written."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from management_gateway import ManagementGateway, denied, signed_gateway_on

from kfaas import object_store
from kfaas.gateway.auth import Principal

VERSIONS, ALIASES = object_store.FUNCTION_VERSIONS, object_store.FUNCTION_ALIASES


@dataclass
class Grants:
    """Allows the (verb, plural) pairs held, in namespace default; records every question."""

    pairs: set[tuple[str, str]] = field(default_factory=set)
    asked: list[tuple[str, str, str | None]] = field(default_factory=list)

    async def allowed(
        self, principal: Principal, verb: str, namespace: str, name: str | None, *,
        plural: str = "functions",
    ) -> bool:  # fmt: skip
        self.asked.append((verb, plural, name))
        return namespace == "default" and (verb, plural) in self.pairs


@dataclass
class Guarded:
    gateway: ManagementGateway
    grants: Grants


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Guarded]:
    grants = Grants()
    with signed_gateway_on(tmp_path, grants) as gateway:
        yield Guarded(gateway, grants)


def test_each_version_and_alias_operation_needs_its_verb(guarded: Guarded) -> None:
    gateway, grants = guarded.gateway, guarded.grants
    client = gateway.client
    body = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "resize", "namespace": "default"},
        "spec": {
            "runtime": "python3.12",
            "handler": "app.handler",
            "code": {"inline": {"app.py": "def handler(event, context):\n    return 1\n"}},
            "environment": {"STAGE": "prod"},
        },
    }
    gateway.run(
        gateway.objects.create(
            object_store.FUNCTIONS, body, field_manager=object_store.DEV_FILES_MANAGER
        )
    )
    # What a Function's viewer may do is not enough for any of them.
    grants.pairs = {("get", "functions"), ("list", "functions"), ("create", "functions")}
    for action, call, arguments in (
        ("PublishVersion", client.publish_version, {}),
        ("ListVersionsByFunction", client.list_versions_by_function, {}),
        ("CreateAlias", client.create_alias, {"Name": "live", "FunctionVersion": "1"}),
        ("GetAlias", client.get_alias, {"Name": "live"}),
        ("UpdateAlias", client.update_alias, {"Name": "live", "FunctionVersion": "1"}),
        ("DeleteAlias", client.delete_alias, {"Name": "live"}),
        ("ListAliases", client.list_aliases, {}),
    ):  # fmt: skip
        denied(client, action, call, FunctionName="resize", **arguments)
    assert gateway.run(gateway.objects.list(VERSIONS)) == []
    grants.asked.clear()
    grants.pairs = {("create", VERSIONS), ("list", VERSIONS), ("get", "functions")}
    assert client.publish_version(FunctionName="resize")["Version"] == "1"
    # Environment values only for a caller who may get the versions, as ListFunctions does.
    versions = client.list_versions_by_function(FunctionName="resize")["Versions"]
    assert len(versions) == 2 and not any("Environment" in v for v in versions)
    assert ("create", VERSIONS, None) in grants.asked
    grants.pairs.add(("get", VERSIONS))
    versions = client.list_versions_by_function(FunctionName="resize")["Versions"]
    assert [v["Environment"]["Variables"] for v in versions] == [{"STAGE": "prod"}] * 2
    grants.asked.clear()
    grants.pairs = {(verb, ALIASES) for verb in ("create", "get", "update", "list", "delete")}
    client.create_alias(FunctionName="resize", Name="live", FunctionVersion="1")
    client.get_alias(FunctionName="resize", Name="live")
    client.update_alias(FunctionName="resize", Name="live", Description="moved")
    client.list_aliases(FunctionName="resize")
    client.delete_alias(FunctionName="resize", Name="live")
    assert [(verb, name) for verb, plural, name in grants.asked if plural == ALIASES] == [
        ("create", "resize.live"), ("get", "resize.live"), ("update", "resize.live"),
        ("list", None), ("delete", "resize.live"),
    ]  # fmt: skip
    # Another namespace's function: refused before it is looked for.
    denied(client, "PublishVersion", client.publish_version, FunctionName="other/resize")
