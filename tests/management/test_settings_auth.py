"""RBAC on the settings and mapping operations (ADR 024's table): a caller without the verb gets
AccessDeniedException naming the Lambda action; listings and account settings count only what
the caller may list. The gateway checks SigV4 and asks an authorizer that grants
(verb, plural, namespace) triples, as a SubjectAccessReview would answer."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from management_gateway import ManagementGateway, apply_function, denied, signed_gateway_on

from kfaas.gateway.app import SERVICES
from kfaas.gateway.auth import Principal
from kfaas.object_store import EVENT_SOURCE_MAPPINGS

ARN = "arn:aws:lambda:us-east-1:default:function:resize"
KAFKA = {
    "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["k1:9092"]}},
    "Topics": ["uploads"],
}


@dataclass
class Grants:
    """Allows exactly the (verb, plural, namespace) triples held; the test changes them."""

    triples: set[tuple[str, str, str]] = field(default_factory=set)

    async def allowed(
        self, principal: Principal, verb: str, namespace: str, name: str | None, *,
        plural: str = "functions",
    ) -> bool:  # fmt: skip
        return (verb, plural, namespace) in self.triples


@dataclass
class Guarded:
    gateway: ManagementGateway
    grants: Grants


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[Guarded]:
    grants = Grants()
    with signed_gateway_on(tmp_path, grants) as gateway:
        yield Guarded(gateway, grants)


def test_each_settings_operation_needs_its_verb(guarded: Guarded) -> None:
    gateway, grants = guarded.gateway, guarded.grants
    client = gateway.client
    apply_function(gateway, "resize")
    grants.triples = {("get", "functions", "default")}
    assert "ReservedConcurrentExecutions" not in client.get_function_concurrency(
        FunctionName="resize"
    )
    assert client.list_tags(Resource=ARN)["Tags"] == {}
    for action, call, arguments in (
        ("PutFunctionConcurrency", client.put_function_concurrency,
         {"FunctionName": "resize", "ReservedConcurrentExecutions": 1}),
        ("DeleteFunctionConcurrency", client.delete_function_concurrency,
         {"FunctionName": "resize"}),
        ("PutFunctionEventInvokeConfig", client.put_function_event_invoke_config,
         {"FunctionName": "resize"}),
        ("UpdateFunctionEventInvokeConfig", client.update_function_event_invoke_config,
         {"FunctionName": "resize"}),
        ("DeleteFunctionEventInvokeConfig", client.delete_function_event_invoke_config,
         {"FunctionName": "resize"}),
        ("TagResource", client.tag_resource, {"Resource": ARN, "Tags": {"a": "b"}}),
        ("UntagResource", client.untag_resource, {"Resource": ARN, "TagKeys": ["a"]}),
    ):  # fmt: skip
        denied(client, action, call, **arguments)
    grants.triples = {("patch", "functions", "default")}
    client.put_function_concurrency(FunctionName="resize", ReservedConcurrentExecutions=1)
    client.tag_resource(Resource=ARN, Tags={"a": "b"})
    denied(client, "GetFunctionConcurrency", client.get_function_concurrency, FunctionName="resize")
    denied(client, "ListTags", client.list_tags, Resource=ARN)
    # A caller without the verb is refused whether or not the function exists.
    denied(client, "GetFunctionEventInvokeConfig", client.get_function_event_invoke_config,
           FunctionName="absent")  # fmt: skip


def test_account_settings_count_only_namespaces_the_caller_may_list(guarded: Guarded) -> None:
    gateway, grants = guarded.gateway, guarded.grants
    apply_function(gateway, "resize")
    apply_function(gateway, "other", "team-b")
    assert gateway.client.get_account_settings()["AccountUsage"]["FunctionCount"] == 0
    grants.triples = {("list", "functions", "team-b")}
    assert gateway.client.get_account_settings()["AccountUsage"]["FunctionCount"] == 1


def test_mappings_need_their_verb_and_get_on_the_function(guarded: Guarded) -> None:
    gateway, grants = guarded.gateway, guarded.grants
    client = gateway.client
    apply_function(gateway, "resize")
    grants.triples = {("create", EVENT_SOURCE_MAPPINGS, "default")}
    denied(client, "CreateEventSourceMapping", client.create_event_source_mapping,
           FunctionName="resize", **KAFKA)  # fmt: skip
    grants.triples.add(("get", "functions", "default"))
    uid = client.create_event_source_mapping(FunctionName="resize", **KAFKA)["UUID"]
    denied(client, "GetEventSourceMapping", client.get_event_source_mapping, UUID=uid)
    denied(client, "UpdateEventSourceMapping", client.update_event_source_mapping, UUID=uid,
           BatchSize=5)  # fmt: skip
    denied(client, "DeleteEventSourceMapping", client.delete_event_source_mapping, UUID=uid)
    assert client.list_event_source_mappings()["EventSourceMappings"] == []
    grants.triples |= {
        (verb, EVENT_SOURCE_MAPPINGS, "default") for verb in ("get", "update", "delete", "list")
    }
    assert client.get_event_source_mapping(UUID=uid)["UUID"] == uid
    assert client.update_event_source_mapping(UUID=uid, BatchSize=5)["BatchSize"] == 5
    assert [m["UUID"] for m in client.list_event_source_mappings()["EventSourceMappings"]] == [uid]
    client.delete_event_source_mapping(UUID=uid)
    assert gateway.run(gateway.objects.list(EVENT_SOURCE_MAPPINGS)) == []


def test_a_redis_stream_mapping_reads_the_platforms_redis(guarded: Guarded) -> None:
    """Where the gateway knows the platform's Redis, a stream ARN is a mapping on it."""
    gateway, grants = guarded.gateway, guarded.grants
    apply_function(gateway, "resize")
    grants.triples = {("create", EVENT_SOURCE_MAPPINGS, "default"), ("get", "functions", "default")}
    gateway.app[SERVICES].platform_redis_url = "redis://platform:6379"
    created = gateway.client.create_event_source_mapping(
        FunctionName="resize", EventSourceArn="arn:kfaas:redis:::stream/uploads"
    )
    assert created["EventSourceArn"] == "arn:kfaas:redis:::stream/uploads"
    (body,) = gateway.run(gateway.objects.list(EVENT_SOURCE_MAPPINGS))
    assert body["spec"]["redis"] == {
        "url": "redis://platform:6379",
        "stream": "uploads",
        "startingPosition": "LATEST",
    }
