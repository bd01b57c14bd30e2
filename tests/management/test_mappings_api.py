"""Create/Get/Update/Delete/ListEventSourceMappings through boto3 (ADR 024 slice 9).

Functions are written into the gateway's object store as ``kubectl apply`` would; the tests play
the operator by writing the mapping's status, as it would after a reconcile.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from management_gateway import ManagementGateway as Gateway
from management_gateway import apply_function

from kfaas.manifests import EventSourceMapping
from kfaas.object_store import EVENT_SOURCE_MAPPINGS, FUNCTIONS

KAFKA: dict[str, Any] = {
    "FunctionName": "resize",
    "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["k1:9092"]}},
    "Topics": ["uploads"],
    "StartingPosition": "TRIM_HORIZON",
}


def mappings(gateway: Gateway, namespace: str | None = None) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = gateway.run(
        gateway.objects.list(EVENT_SOURCE_MAPPINGS, namespace)
    )
    return listed


def report(gateway: Gateway, name: str, **status: Any) -> None:
    """What the operator writes after a reconcile of the mapping's current generation."""
    body = gateway.run(gateway.objects.get(EVENT_SOURCE_MAPPINGS, "default", name))
    status.setdefault("observedGeneration", body["metadata"]["generation"])
    gateway.run(gateway.objects.write_status(EVENT_SOURCE_MAPPINGS, "default", name, status))


def message_of(caught: pytest.ExceptionInfo[ClientError]) -> str:
    return str(caught.value.response["Error"]["Message"])


def test_a_kafka_mapping_is_created_read_updated_and_deleted(
    management_gateway: Gateway, lambda_api: Any
) -> None:
    apply_function(management_gateway)
    created = lambda_api.create_event_source_mapping(
        **KAFKA,
        BatchSize=10,
        DestinationConfig={"OnFailure": {"Destination": "arn:kfaas:kafka:::topic/dlq"}},
        Tags={"team": "media"},
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert created["State"] == "Creating"
    (body,) = mappings(management_gateway)
    name = body["metadata"]["name"]
    assert name.startswith("resize-") and created["UUID"] == body["metadata"]["uid"]
    EventSourceMapping.model_validate({**body, "status": None})  # what kubectl could apply
    assert body["metadata"]["annotations"]["kfaas.dev/tags"] == '{"team":"media"}'
    assert created["Topics"] == ["uploads"] and created["BatchSize"] == 10
    assert created["FunctionArn"] == "arn:aws:lambda:us-east-1:default:function:resize"

    report(management_gateway, name, state="Enabled", lastProcessingResult="OK")
    got = lambda_api.get_event_source_mapping(UUID=created["UUID"])
    assert got["State"] == "Enabled" and got["LastProcessingResult"] == "OK"
    assert got["LastModified"] == created["LastModified"]
    arn = got["EventSourceMappingArn"]
    assert lambda_api.list_tags(Resource=arn)["Tags"] == {"team": "media"}
    lambda_api.tag_resource(Resource=arn, Tags={"stage": "prod"})
    lambda_api.untag_resource(Resource=arn, TagKeys=["team"])
    assert lambda_api.list_tags(Resource=arn)["Tags"] == {"stage": "prod"}
    tagged = lambda_api.get_event_source_mapping(UUID=created["UUID"])
    assert tagged["LastModified"] == created["LastModified"]

    updated = lambda_api.update_event_source_mapping(
        UUID=created["UUID"], Enabled=False, BatchSize=20
    )
    assert updated["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert updated["State"] == "Disabling" and updated["BatchSize"] == 20
    assert updated["DestinationConfig"] == created["DestinationConfig"]
    report(management_gateway, name, state="Disabled")
    assert lambda_api.get_event_source_mapping(UUID=created["UUID"])["State"] == "Disabled"

    deleted = lambda_api.delete_event_source_mapping(UUID=created["UUID"])
    assert deleted["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert deleted["State"] == "Deleting"
    assert mappings(management_gateway) == []
    with pytest.raises(lambda_api.exceptions.ResourceNotFoundException):
        lambda_api.get_event_source_mapping(UUID=created["UUID"])


def test_a_mapping_applied_with_kubectl_is_visible(
    management_gateway: Gateway, lambda_api: Any
) -> None:
    apply_function(management_gateway)
    body = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "uploads", "namespace": "default"},
        "spec": {
            "functionName": "resize",
            "redis": {"url": "redis://:secret@elsewhere:6379", "stream": "uploads"},
            "destinationConfig": {"onFailure": {"redis": {"stream": "failed"}}},
        },
    }
    management_gateway.run(
        management_gateway.objects.create(EVENT_SOURCE_MAPPINGS, body, field_manager="kubectl")
    )
    (listed,) = lambda_api.list_event_source_mappings(FunctionName="resize")["EventSourceMappings"]
    assert listed["EventSourceArn"] == "arn:kfaas:redis:::stream/uploads"
    assert "secret" not in repr(listed)
    # An update naming the same destination keeps the mapping's own servers.
    lambda_api.update_event_source_mapping(
        UUID=listed["UUID"],
        DestinationConfig={"OnFailure": {"Destination": "arn:kfaas:redis:::stream/failed"}},
    )
    (stored,) = mappings(management_gateway)
    assert stored["spec"]["redis"]["url"] == "redis://:secret@elsewhere:6379"


def test_a_redis_stream_mapping_needs_the_platforms_redis(
    management_gateway: Gateway, lambda_api: Any
) -> None:
    apply_function(management_gateway)
    with pytest.raises(lambda_api.exceptions.InvalidParameterValueException) as caught:
        lambda_api.create_event_source_mapping(
            FunctionName="resize", EventSourceArn="arn:kfaas:redis:::stream/uploads"
        )
    assert "EventSourceArn" in message_of(caught) and "KFAAS_REDIS_URL" in message_of(caught)


def test_list_filters_by_function_and_pages(management_gateway: Gateway, lambda_api: Any) -> None:
    apply_function(management_gateway)
    apply_function(management_gateway, "thumbnail")
    made = [lambda_api.create_event_source_mapping(**KAFKA)["UUID"] for _ in range(3)]
    other = lambda_api.create_event_source_mapping(**{**KAFKA, "FunctionName": "thumbnail"})
    everything = lambda_api.list_event_source_mappings()["EventSourceMappings"]
    assert len(everything) == 4
    resize = lambda_api.list_event_source_mappings(FunctionName="resize")["EventSourceMappings"]
    assert sorted(m["UUID"] for m in resize) == sorted(made)
    seen, marker = [], None
    while True:
        page = lambda_api.list_event_source_mappings(
            MaxItems=1, **({"Marker": marker} if marker else {})
        )
        assert len(page["EventSourceMappings"]) == 1
        seen += [m["UUID"] for m in page["EventSourceMappings"]]
        marker = page.get("NextMarker")
        if marker is None:
            break
    assert sorted(seen) == sorted([*made, other["UUID"]])
    paginated = lambda_api.get_paginator("list_event_source_mappings").paginate(
        PaginationConfig={"PageSize": 2}
    )
    assert sum(len(p["EventSourceMappings"]) for p in paginated) == 4
    with pytest.raises(lambda_api.exceptions.InvalidParameterValueException) as caught:
        lambda_api.list_event_source_mappings(Marker="garbled")
    assert "Marker" in message_of(caught)


def test_errors_are_lambdas_and_name_the_parameter(
    management_gateway: Gateway, lambda_api: Any
) -> None:
    apply_function(management_gateway)
    with pytest.raises(lambda_api.exceptions.ResourceNotFoundException):
        lambda_api.create_event_source_mapping(**{**KAFKA, "FunctionName": "absent"})
    unknown = "00000000-0000-0000-0000-000000000000"
    for call in (
        lambda_api.get_event_source_mapping,
        lambda_api.delete_event_source_mapping,
        lambda_api.update_event_source_mapping,
    ):
        with pytest.raises(lambda_api.exceptions.ResourceNotFoundException):
            call(UUID=unknown)
    for extra, named in (
        ({"ParallelizationFactor": 2}, "ParallelizationFactor"),
        ({"StartingPosition": "AT_TIMESTAMP"}, "StartingPosition"),
        ({"Topics": ["a", "b"]}, "Topics"),
        ({"FilterCriteria": {"Filters": [{"Pattern": "[1]"}]}}, "filterCriteria"),
    ):
        with pytest.raises(lambda_api.exceptions.InvalidParameterValueException) as caught:
            lambda_api.create_event_source_mapping(**{**KAFKA, **extra})
        assert named in message_of(caught)
    assert mappings(management_gateway) == []
    uid = lambda_api.create_event_source_mapping(**KAFKA)["UUID"]
    with pytest.raises(lambda_api.exceptions.InvalidParameterValueException) as caught:
        lambda_api.update_event_source_mapping(UUID=uid, BatchSize=20000)
    assert "BatchSize" in message_of(caught)
    with pytest.raises(lambda_api.exceptions.ResourceNotFoundException):
        lambda_api.update_event_source_mapping(UUID=uid, FunctionName="absent")


def test_a_mapping_outliving_its_function_can_still_be_disabled(
    management_gateway: Gateway, lambda_api: Any
) -> None:
    apply_function(management_gateway)
    uid = lambda_api.create_event_source_mapping(**KAFKA)["UUID"]
    management_gateway.run(management_gateway.objects.delete(FUNCTIONS, "default", "resize"))
    assert lambda_api.update_event_source_mapping(UUID=uid, Enabled=False)["BatchSize"] == 100
    (stored,) = mappings(management_gateway)
    assert stored["spec"]["enabled"] is False
    with pytest.raises(lambda_api.exceptions.ResourceNotFoundException):
        lambda_api.update_event_source_mapping(UUID=uid, FunctionName="resize")
