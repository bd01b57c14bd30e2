"""EventSourceMapping requests ↔ specs (kfaas.lambda_mappings) and the answers with their State
(kfaas.lambda_mapping_shapes), judged by botocore's parser; the specs by the CRD's model."""

from __future__ import annotations

import json
import re
from typing import Any

import botocore.session
import pytest
from botocore.parsers import create_parser

from kfaas.lambda_mapping_shapes import mapping_configuration, mapping_state
from kfaas.lambda_mappings import create_spec, update_spec
from kfaas.lambda_shapes import InvalidParameter
from kfaas.manifests import EventSourceMappingSpec

MODEL = botocore.session.get_session().get_service_model("lambda")
NS, REGION, REDIS = "media", "eu-west-1", "redis://platform:6379"
UID = "0b5f3c9e-1d2a-4c6b-8e7f-9a0b1c2d3e4f"
KAFKA = {
    "FunctionName": "resize",
    "SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["k1:9092", "k2:9092"]}},
    "Topics": ["uploads"],
    "StartingPosition": "TRIM_HORIZON",
}


def parsed(operation: str, body: object) -> dict[str, Any]:
    response = {
        "status_code": 200,
        "headers": {"x-amzn-RequestId": "r", "Content-Type": "application/json"},
        "body": json.dumps(body).encode(),
    }
    output = MODEL.operation_model(operation).output_shape
    result: dict[str, Any] = create_parser("rest-json").parse(response, output)
    return result


def create(request: dict[str, Any], redis_url: str | None = REDIS) -> tuple[str, dict[str, Any]]:
    return create_spec(request, default_namespace=NS, region=REGION, redis_url=redis_url)


def body(spec: dict[str, Any], **status: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "resize-x7k2p",
            "namespace": NS,
            "uid": UID,
            "generation": 2,
            "creationTimestamp": "2026-11-30T06:00:00Z",
        },
        "spec": spec,
        "status": status,
    }


def test_a_self_managed_kafka_request_is_a_kafka_mapping() -> None:
    namespace, spec = create(
        {
            **KAFKA,
            "BatchSize": 10,
            "MaximumBatchingWindowInSeconds": 2,
            "MaximumRetryAttempts": 3,
            "MaximumRecordAgeInSeconds": 600,
            "BisectBatchOnFunctionError": True,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "FilterCriteria": {"Filters": [{"Pattern": '{"value": {"kind": ["image"]}}'}]},
            "DestinationConfig": {"OnFailure": {"Destination": "arn:kfaas:kafka:::topic/dlq"}},
            "ProvisionedPollerConfig": {"MinimumPollers": 2, "MaximumPollers": 2},
            "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "resizers"},
            "Enabled": False,
        }
    )
    assert namespace == NS
    assert spec == {
        "functionName": "resize",
        "kafka": {
            "bootstrapServers": "k1:9092,k2:9092",
            "topic": "uploads",
            "startingPosition": "TRIM_HORIZON",
            "consumerGroupId": "resizers",
        },
        "enabled": False,
        "bisectBatchOnFunctionError": True,
        "batchSize": 10,
        "maximumRetryAttempts": 3,
        "maximumRecordAgeSeconds": 600,
        "maximumBatchingWindowSeconds": 2,
        "functionResponseTypes": ["ReportBatchItemFailures"],
        "filterCriteria": {"filters": [{"pattern": '{"value": {"kind": ["image"]}}'}]},
        "destinationConfig": {"onFailure": {"kafka": {"topic": "dlq"}}},
        "parallelism": 2,
    }
    EventSourceMappingSpec.model_validate(spec)


def test_a_redis_stream_arn_reads_the_platforms_redis() -> None:
    namespace, spec = create(
        {"FunctionName": "other/resize", "EventSourceArn": "arn:kfaas:redis:::stream/uploads"}
    )
    assert namespace == "other"
    assert spec == {
        "functionName": "resize",
        "redis": {"url": REDIS, "stream": "uploads", "startingPosition": "LATEST"},
    }
    EventSourceMappingSpec.model_validate(spec)


@pytest.mark.parametrize(
    ("name", "qualifier"),
    [("resize:3", "3"), ("resize:live", "live"), ("resize:$LATEST", None), ("resize", None)],
)
def test_a_mapping_may_invoke_a_version_or_an_alias(name: str, qualifier: str | None) -> None:
    """Lambda's FunctionName may be qualified; the spec keeps the qualifier apart from the name,
    so the operator's labels and RBAC keep naming the function."""
    _, spec = create({**KAFKA, "FunctionName": name})
    assert spec["functionName"] == "resize"
    assert spec.get("qualifier") == qualifier
    assert EventSourceMappingSpec.model_validate(spec).qualifier == qualifier
    arn = mapping_configuration(body(spec), region=REGION, last_modified=0)["FunctionArn"]
    assert arn == f"arn:aws:lambda:{REGION}:{NS}:function:" + name.replace(":$LATEST", "")
    updated = update_spec(spec, {"FunctionName": "resize"}, namespace=NS, region=REGION)
    assert "qualifier" not in updated


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        ({"FunctionName": "resize:Live_1"}, "FunctionName"),
        ({"FunctionName": "not a name"}, "FunctionName"),
        ({"StartingPosition": "AT_TIMESTAMP"}, "StartingPosition"),
        ({"StartingPositionTimestamp": 1}, "StartingPositionTimestamp"),
        ({"Topics": ["a", "b"]}, "Topics"),
        ({"Topics": ["a b"]}, "Topics"),
        ({"SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": []}}},
         "SelfManagedEventSource"),
        ({"SelfManagedEventSource": {"Endpoints": {"KAFKA_BOOTSTRAP_SERVERS": ["a,b"]}}},
         "KAFKA_BOOTSTRAP_SERVERS"),
        ({"EventSourceArn": "arn:kfaas:redis:::stream/s"}, "EventSourceArn"),
        ({"BatchSize": 0}, "BatchSize"),
        ({"BatchSize": 10001}, "BatchSize"),
        ({"MaximumBatchingWindowInSeconds": 301}, "MaximumBatchingWindowInSeconds"),
        ({"MaximumRetryAttempts": -2}, "MaximumRetryAttempts"),
        ({"MaximumRecordAgeInSeconds": 604801}, "MaximumRecordAgeInSeconds"),
        ({"Enabled": "yes"}, "Enabled"),
        ({"FunctionResponseTypes": ["Other"]}, "FunctionResponseTypes"),
        ({"FilterCriteria": {"Filters": [{}]}}, "FilterCriteria"),
        ({"DestinationConfig": {"OnSuccess": {"Destination": "arn:kfaas:kafka:::topic/t"}}},
         "DestinationConfig.OnSuccess"),
        ({"DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:::q"}}},
         "DestinationConfig.OnFailure"),
        ({"ProvisionedPollerConfig": {"MinimumPollers": 1, "MaximumPollers": 3}},
         "ProvisionedPollerConfig"),
        ({"SelfManagedKafkaEventSourceConfig": {"SchemaRegistryConfig": {}}},
         "SelfManagedKafkaEventSourceConfig"),
        ({"ParallelizationFactor": 2}, "ParallelizationFactor"),
        ({"TumblingWindowInSeconds": 60}, "TumblingWindowInSeconds"),
        ({"SourceAccessConfigurations": [{"Type": "VPC_SUBNET", "URI": "subnet:s-1"}]},
         "SourceAccessConfigurations"),
        ({"SourceAccessConfigurations": [{"Type": "VIRTUAL_HOST", "URI": "/"}]},
         "SourceAccessConfigurations"),
        ({"KMSKeyArn": "arn:aws:kms:::key"}, "KMSKeyArn"),
        ({"Queues": ["q"]}, "Queues"),
    ],
)  # fmt: skip
def test_what_kfaas_cannot_do_is_refused_naming_the_parameter(
    change: dict[str, Any], parameter: str
) -> None:
    with pytest.raises(InvalidParameter, match=parameter) as caught:
        create({**KAFKA, **change})
    assert caught.value.parameter == parameter


def test_a_redis_source_needs_the_platforms_redis_and_no_topics() -> None:
    request = {"FunctionName": "resize", "EventSourceArn": "arn:kfaas:redis:::stream/s"}
    with pytest.raises(InvalidParameter, match="KFAAS_REDIS_URL"):
        create(request, redis_url=None)
    for secret in ("redis://:pw@redis:6379", "redis://user@redis", "redis://redis?password=pw"):
        with pytest.raises(InvalidParameter, match="credentials") as caught:
            create(request, redis_url=secret)
        assert caught.value.parameter == "EventSourceArn"
    with pytest.raises(InvalidParameter, match="Topics"):
        create({**request, "Topics": ["t"]})
    with pytest.raises(InvalidParameter, match="Kafka sources only"):
        create({**request, "SelfManagedKafkaEventSourceConfig": {"ConsumerGroupId": "g"}})
    for arn in ("arn:aws:sqs:us-east-1:123456789012:q", "arn:kfaas:kafka:::topic/t"):
        with pytest.raises(InvalidParameter, match="EventSourceArn"):
            create({"FunctionName": "resize", "EventSourceArn": arn})
    with pytest.raises(InvalidParameter, match="exactly one"):
        create({**KAFKA, **request})


def test_update_merges_settings_and_clears_what_is_emptied() -> None:
    _, current = create(
        {
            **KAFKA,
            "FilterCriteria": {"Filters": [{"Pattern": "{}"}]},
            "DestinationConfig": {"OnFailure": {"Destination": "arn:kfaas:redis:::stream/f"}},
        }
    )
    new = update_spec(
        current,
        {
            "BatchSize": 5,
            "Enabled": False,
            "FilterCriteria": {},
            "DestinationConfig": {"OnFailure": {}},
            "FunctionName": "thumbnail",
        },
        namespace=NS,
        region=REGION,
    )
    assert new["batchSize"] == 5 and new["enabled"] is False
    assert new["functionName"] == "thumbnail" and new["kafka"] == current["kafka"]
    assert "filterCriteria" not in new and "destinationConfig" not in new
    with pytest.raises(InvalidParameter, match="Topics"):
        update_spec(current, {"Topics": ["x"]}, namespace=NS, region=REGION)
    with pytest.raises(InvalidParameter, match="namespace 'media'"):
        update_spec(current, {"FunctionName": "other/x"}, namespace=NS, region=REGION)


@pytest.mark.parametrize(
    ("generation_seen", "state", "enabled", "expected"),
    [
        (None, None, True, "Creating"),
        (2, "Creating", True, "Creating"),
        (2, "Enabled", True, "Enabled"),
        (2, "Disabled", False, "Disabled"),
        (1, "Disabled", True, "Enabling"),
        (1, "Enabled", False, "Disabling"),
        (1, "Enabled", True, "Updating"),
        (1, "Disabled", False, "Updating"),
    ],
)
def test_state_follows_the_operators_status_and_generation(
    generation_seen: int | None, state: str | None, enabled: bool, expected: str
) -> None:
    status = {} if state is None else {"observedGeneration": generation_seen, "state": state}
    assert mapping_state(body({"functionName": "f", "enabled": enabled}, **status)) == (
        expected,
        "User action",
    )


def test_a_failed_mapping_says_why() -> None:
    status = {
        "observedGeneration": 2,
        "state": "Failed",
        "conditions": [{"type": "Ready", "status": "False", "message": "function not found"}],
    }
    assert mapping_state(body({"functionName": "f"}, **status)) == ("Failed", "function not found")


def test_the_answer_is_one_botocore_parses_and_round_trips_the_request() -> None:
    request = {
        **KAFKA,
        "BatchSize": 10,
        "DestinationConfig": {"OnFailure": {"Destination": "arn:kfaas:kafka:::topic/dlq"}},
        "FilterCriteria": {"Filters": [{"Pattern": "{}"}]},
    }
    _, spec = create(request)
    answer = mapping_configuration(
        body(spec, observedGeneration=2, state="Enabled", lastProcessingResult="OK"),
        region=REGION,
        last_modified=1764489600.5,
    )
    result = parsed("GetEventSourceMapping", answer)
    assert result["UUID"] == UID
    assert (
        result["EventSourceMappingArn"]
        == f"arn:aws:lambda:{REGION}:{NS}:event-source-mapping:{UID}"
    )
    assert result["FunctionArn"] == f"arn:aws:lambda:{REGION}:{NS}:function:resize"
    assert result["State"] == "Enabled" and result["LastProcessingResult"] == "OK"
    assert result["LastModified"].timestamp() == 1764489600.5
    for field in ("SelfManagedEventSource", "Topics", "StartingPosition", "BatchSize",
                  "DestinationConfig", "FilterCriteria"):  # fmt: skip
        assert result[field] == request[field], field
    assert result["SelfManagedKafkaEventSourceConfig"] == {"ConsumerGroupId": "resize-x7k2p"}
    # The spec's default 0.5 s goes out as is; botocore reads Lambda's integer field as 0.
    assert answer["MaximumBatchingWindowInSeconds"] == 0.5
    assert result["MaximumBatchingWindowInSeconds"] == 0
    assert "EventSourceArn" not in result


def test_a_redis_mappings_answer_names_its_stream_and_never_its_url() -> None:
    _, spec = create({"FunctionName": "resize", "EventSourceArn": "arn:kfaas:redis:::stream/up"})
    spec["redis"]["url"] = "redis://:secret@platform:6379"
    answer = mapping_configuration(body(spec), region=REGION, last_modified=0)
    assert answer["EventSourceArn"] == "arn:kfaas:redis:::stream/up"
    assert "secret" not in json.dumps(answer)
    assert (
        parsed("ListEventSourceMappings", {"EventSourceMappings": [answer]})["EventSourceMappings"][
            0
        ]["State"]
        == "Creating"
    )


SECRET_ARN = f"arn:aws:secretsmanager:{REGION}:{NS}:secret:"


@pytest.mark.parametrize(
    "mechanism",
    ["BASIC_AUTH", "SASL_SCRAM_256_AUTH", "SASL_SCRAM_512_AUTH", "CLIENT_CERTIFICATE_TLS_AUTH"],
)
def test_source_access_configurations_are_the_kafka_tls_and_auth_secrets(mechanism: str) -> None:
    access = [
        {"Type": mechanism, "URI": "arn:aws:secretsmanager:us-east-1:123456789012:secret:creds"},
        {"Type": "SERVER_ROOT_CA_CERTIFICATE", "URI": "kafka-ca"},
    ]
    _, spec = create({**KAFKA, "SourceAccessConfigurations": access})
    assert spec["kafka"]["auth"] == {"mechanism": mechanism, "secretRef": {"name": "creds"}}
    assert spec["kafka"]["tls"] == {"caSecretRef": {"name": "kafka-ca"}}
    EventSourceMappingSpec.model_validate(spec)
    answer = mapping_configuration(body(spec), region=REGION, last_modified=0)
    shown = parsed("GetEventSourceMapping", answer)["SourceAccessConfigurations"]
    assert shown == [
        {"Type": mechanism, "URI": SECRET_ARN + "creds"},
        {"Type": "SERVER_ROOT_CA_CERTIFICATE", "URI": SECRET_ARN + "kafka-ca"},
    ]
    # The answer's URIs name the same Secrets: sent back, they change nothing.
    again = update_spec(spec, {"SourceAccessConfigurations": shown}, namespace=NS, region=REGION)
    assert again == spec


def test_authentication_turns_tls_on_and_an_update_replaces_or_clears_it() -> None:
    scram = [{"Type": "SASL_SCRAM_512_AUTH", "URI": "creds"}]
    _, spec = create({**KAFKA, "SourceAccessConfigurations": scram})
    assert spec["kafka"]["tls"] == {}
    ca_only = [{"Type": "SERVER_ROOT_CA_CERTIFICATE", "URI": "ca"}]
    new = update_spec(spec, {"SourceAccessConfigurations": ca_only}, namespace=NS, region=REGION)
    assert "auth" not in new["kafka"] and new["kafka"]["tls"] == {"caSecretRef": {"name": "ca"}}
    cleared = update_spec(new, {"SourceAccessConfigurations": []}, namespace=NS, region=REGION)
    assert "tls" not in cleared["kafka"] and "auth" not in cleared["kafka"]
    answer = mapping_configuration(body(cleared), region=REGION, last_modified=0)
    assert "SourceAccessConfigurations" not in answer


@pytest.mark.parametrize(
    ("access", "said"),
    [
        ([{"Type": "BASIC_AUTH", "URI": "Not_A_Name"}], "must name a Kubernetes Secret"),
        ([{"Type": "BASIC_AUTH"}], "needs a URI"),
        (
            [{"Type": "BASIC_AUTH", "URI": "a"}, {"Type": "SASL_SCRAM_512_AUTH", "URI": "b"}],
            "one authentication type",
        ),
        ([{"Type": "SASL_SCRAM_256_AUTH", "URI": "a", "Extra": 1}], "{Type, URI}"),
        ("creds", "must be a list"),
    ],
)
def test_bad_source_access_configurations_are_refused(access: Any, said: str) -> None:
    with pytest.raises(InvalidParameter, match=re.escape(said)) as caught:
        create({**KAFKA, "SourceAccessConfigurations": access})
    assert caught.value.parameter == "SourceAccessConfigurations"
    redis = {"FunctionName": "resize", "EventSourceArn": "arn:kfaas:redis:::stream/s"}
    with pytest.raises(InvalidParameter, match="Kafka sources only"):
        create({**redis, "SourceAccessConfigurations": []})
