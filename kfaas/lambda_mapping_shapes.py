"""Lambda's EventSourceMappingConfiguration for an EventSourceMapping object (ADR 024).

What Get/List/Create/Update/DeleteEventSourceMapping answer, read from the object alone (so a
mapping applied with kubectl shows the same): the UUID is ``metadata.uid``; a Kafka source is
Lambda's self-managed Kafka, a Redis stream its `arn:kfaas:redis:::stream/<s>` (never its URL);
`State` comes from the operator's `status.state` and whether it has seen the current generation.
The requests' side is ``kfaas.lambda_mappings``. Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .lambda_kafka_access import access_configurations
from .lambda_mappings import KAFKA_ENDPOINT
from .lambda_settings import REDIS_PREFIX, encode_destination
from .names import function_arn


def mapping_state(body: Mapping[str, Any]) -> tuple[str, str]:
    """Lambda's State and StateTransitionReason from the operator's status.

    The operator writes ``status.state`` (Creating, Enabled, Disabled, Failed) for
    ``status.observedGeneration``; a spec it has not seen yet is Enabling, Disabling or Updating.
    """
    metadata, spec = body.get("metadata") or {}, body.get("spec") or {}
    status = body.get("status") or {}
    seen, state = status.get("observedGeneration"), status.get("state")
    if seen is None or state is None:
        return "Creating", "User action"
    if seen != metadata.get("generation", 1):
        enabled = spec.get("enabled", True)
        if enabled and state in ("Disabled", "Failed"):
            return "Enabling", "User action"
        if not enabled and state != "Disabled":
            return "Disabling", "User action"
        return "Updating", "User action"
    if state == "Failed":
        for condition in status.get("conditions") or []:
            if condition.get("type") == "Ready":
                return "Failed", str(condition.get("message") or condition.get("reason") or "")
    return str(state), "User action"


def source_arn(spec: Mapping[str, Any]) -> str | None:
    """The EventSourceArn a mapping shows: its Redis stream's; None for Kafka (self-managed)."""
    redis = spec.get("redis")
    return REDIS_PREFIX + str(redis["stream"]) if redis else None


def mapping_arn(namespace: str, uid: str, region: str) -> str:
    return f"arn:aws:lambda:{region}:{namespace}:event-source-mapping:{uid}"


def mapping_configuration(
    body: Mapping[str, Any], *, region: str, last_modified: float
) -> dict[str, Any]:
    """botocore's EventSourceMappingConfiguration for a mapping object."""
    metadata, spec = body["metadata"], body.get("spec") or {}
    namespace, uid = metadata["namespace"], str(metadata.get("uid", ""))
    state, reason = mapping_state(body)
    window = spec.get("maximumBatchingWindowSeconds", 0.5)
    answer: dict[str, Any] = {
        "UUID": uid,
        "EventSourceMappingArn": mapping_arn(namespace, uid, region),
        "FunctionArn": function_arn(namespace, spec["functionName"], region, spec.get("qualifier")),
        "BatchSize": spec.get("batchSize", 100),
        # Lambda's is whole seconds; a kubectl-written fraction (the default 0.5) is shown as is.
        "MaximumBatchingWindowInSeconds": int(window) if float(window).is_integer() else window,
        "MaximumRetryAttempts": spec.get("maximumRetryAttempts", -1),
        "MaximumRecordAgeInSeconds": spec.get("maximumRecordAgeSeconds", -1),
        "BisectBatchOnFunctionError": spec.get("bisectBatchOnFunctionError", False),
        "FunctionResponseTypes": list(spec.get("functionResponseTypes") or []),
        "ProvisionedPollerConfig": {
            "MinimumPollers": spec.get("parallelism", 1),
            "MaximumPollers": spec.get("parallelism", 1),
        },
        "State": state,
        "StateTransitionReason": reason,
        "LastModified": last_modified,
    }
    if (status := body.get("status") or {}).get("lastProcessingResult"):
        answer["LastProcessingResult"] = status["lastProcessingResult"]
    if filters := (spec.get("filterCriteria") or {}).get("filters"):
        answer["FilterCriteria"] = {"Filters": [{"Pattern": f["pattern"]} for f in filters]}
    if target := (spec.get("destinationConfig") or {}).get("onFailure"):
        arn = encode_destination(target, namespace=namespace, region=region)
        answer["DestinationConfig"] = {"OnFailure": {"Destination": arn}}
    if kafka := spec.get("kafka"):
        answer["SelfManagedEventSource"] = {
            "Endpoints": {KAFKA_ENDPOINT: str(kafka["bootstrapServers"]).split(",")}
        }
        answer["Topics"] = [kafka["topic"]]
        answer["StartingPosition"] = kafka.get("startingPosition", "LATEST")
        answer["SelfManagedKafkaEventSourceConfig"] = {
            "ConsumerGroupId": kafka.get("consumerGroupId") or metadata["name"]
        }
        if access := access_configurations(kafka, namespace=namespace, region=region):
            answer["SourceAccessConfigurations"] = access
    elif redis := spec.get("redis"):
        answer["EventSourceArn"] = source_arn(spec)
        answer["StartingPosition"] = redis.get("startingPosition", "LATEST")
    return answer
