"""Lambda's management-API shapes, built from a Function and the facts its API object carries.

The management API (issue 11, ADR 024) answers `GetFunctionConfiguration`, `GetFunction` and the
listings from Kubernetes objects that `kubectl` may have written, so every field a Lambda client
reads must be derived from the object itself, never invented at request time: `RevisionId` from
the object's uid and generation, `LastModified` from the time of the last write of its spec,
`State`/`LastUpdateStatus` from the operator's conditions, `CodeSha256`/`CodeSize` from
``kfaas.lambda_code``. These are plain functions with no I/O, shared by the
cluster gateway and `kfaas dev`; the wire shapes are TypedDicts checked against botocore's model
by the tests.
"""

from __future__ import annotations

import datetime
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal, NotRequired, TypedDict

from .lambda_code import CodeFacts
from .manifests import Function
from .names import LATEST, function_arn

# Lambda writes LastModified as ISO 8601 with milliseconds and a numeric UTC offset.
_LAMBDA_TIME = "%Y-%m-%dT%H:%M:%S.{millis:03d}+0000"
# Namespaces the uuid that RevisionId is, so it cannot equal a uuid derived for another purpose.
_REVISION_NAMESPACE = uuid.UUID("6f1c2a4e-8b0d-4c55-9a3e-2d7f0b6e5a11")

State = Literal["Pending", "Active", "Failed"]
UpdateStatus = Literal["InProgress", "Successful", "Failed"]


class InvalidParameter(ValueError):
    """A request parameter Lambda refuses; the gateway answers InvalidParameterValueException."""

    def __init__(self, parameter: str, message: str) -> None:
        self.parameter = parameter
        super().__init__(message)


# -- Wire shapes (botocore's FunctionConfiguration and GetFunctionResponse) -------------------


class EnvironmentShape(TypedDict):
    Variables: dict[str, str]


class TracingShape(TypedDict):
    Mode: str


class StateFields(TypedDict):
    State: State
    LastUpdateStatus: UpdateStatus
    StateReason: NotRequired[str]
    StateReasonCode: NotRequired[str]
    LastUpdateStatusReason: NotRequired[str]
    LastUpdateStatusReasonCode: NotRequired[str]


class FunctionConfiguration(StateFields):
    FunctionName: str
    FunctionArn: str
    Runtime: str
    Role: str
    Handler: str
    # Left out when the gateway cannot see the code (a `code.configMap` in a cluster).
    CodeSize: NotRequired[int]
    CodeSha256: NotRequired[str]
    Description: str
    Timeout: int
    MemorySize: int
    LastModified: str
    Version: str
    RevisionId: str
    PackageType: Literal["Zip", "Image"]
    TracingConfig: TracingShape
    Environment: NotRequired[EnvironmentShape]


class CodeLocation(TypedDict):
    RepositoryType: str
    Location: str


class ConcurrencyShape(TypedDict):
    ReservedConcurrentExecutions: int


class GetFunctionResponse(TypedDict):
    Configuration: FunctionConfiguration
    Code: CodeLocation
    Tags: NotRequired[dict[str, str]]
    Concurrency: NotRequired[ConcurrencyShape]


# -- Facts of the API object ------------------------------------------------------------------


@dataclass(frozen=True)
class ObjectFacts:
    """What the API server says about an object beyond its spec (ADR 024)."""

    uid: str
    generation: int
    # RFC 3339, as the API server writes metadata.creationTimestamp and managedFields times.
    created: str
    # Times of the writes that set spec fields (managedFields entries outside the status).
    spec_writes: tuple[str, ...] = ()
    status: Mapping[str, Any] | None = None


def object_facts(body: Mapping[str, Any]) -> ObjectFacts:
    """The facts of an API object (a Function, FunctionVersion, …) as read from the server."""
    metadata = body.get("metadata") or {}
    spec_writes = tuple(
        str(entry["time"])
        for entry in metadata.get("managedFields") or []
        if entry.get("time")
        and entry.get("subresource") != "status"
        and "f:spec" in (entry.get("fieldsV1") or {})
    )
    return ObjectFacts(
        uid=str(metadata.get("uid", "")),
        generation=int(metadata.get("generation", 1)),
        created=str(metadata.get("creationTimestamp", "")),
        spec_writes=spec_writes,
        status=body.get("status"),
    )


def revision_id(uid: str, generation: int) -> str:
    """Changes exactly when the spec does (generation) or the object is recreated (uid).

    Status writes (the operator's conditions, the autoscaler's counts) and metadata writes (tags)
    leave it alone, so a caller's RevisionId is not made stale by scaling.
    """
    return str(uuid.uuid5(_REVISION_NAMESPACE, f"{uid}/{generation}"))


def parse_time(text: str) -> datetime.datetime:
    """An RFC 3339 time as the API server writes it (`Z` or an offset, optional fraction)."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"{text!r} is not an RFC 3339 time") from exc
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.astimezone(datetime.UTC)


def lambda_time(moment: datetime.datetime) -> str:
    """`2026-11-30T06:00:00.123+0000`: how Lambda writes LastModified."""
    utc = moment.astimezone(datetime.UTC)
    return utc.strftime(_LAMBDA_TIME.format(millis=utc.microsecond // 1000))


def last_modified(facts: ObjectFacts) -> str:
    """The last write of the spec, else the creation; Lambda's format."""
    times = [parse_time(text) for text in (*facts.spec_writes, facts.created) if text]
    if not times:
        raise ValueError("the object has neither a creationTimestamp nor a spec write time")
    return lambda_time(max(times))


# -- State ------------------------------------------------------------------------------------

# The operator's condition reasons (operator/reconcile.py, conditions.py) as Lambda reason codes.
_REASON_CODES: Mapping[str, str] = {
    "InvalidSpec": "InvalidConfiguration",
    "CodeMismatch": "InvalidConfiguration",
    "PodTemplateNotAllowed": "InvalidConfiguration",
    "RuntimeNotAvailable": "InvalidRuntime",
    "ProgressDeadlineExceeded": "FunctionError",
    "FailedCreate": "ServiceQuotaExceededException",
    "CodeConfigMapNotFound": "InvalidConfiguration",
    "CodeStoreNotAvailable": "InvalidZipFileException",
}
_CREATING = "The function is being created."
_UPDATING = "The function is being updated."


def _ready(status: Mapping[str, Any]) -> Mapping[str, Any] | None:
    for condition in status.get("conditions") or []:
        if isinstance(condition, Mapping) and condition.get("type") == "Ready":
            return condition
    return None


def function_state(status: Mapping[str, Any] | None, generation: int) -> StateFields:
    """State and LastUpdateStatus from the operator's status (ADR 024's table).

    A function that has run code once (`status.codeSha256`) stays Active through later updates,
    as old instances keep serving during a rolling update; only an update's outcome is then
    InProgress, Successful or Failed. Status written for an older generation means the operator
    has not yet acted on the current spec: InProgress.
    """
    status = status or {}
    ready = _ready(status)
    served = bool(status.get("codeSha256"))
    current = status.get("observedGeneration") == generation
    ready_status = ready.get("status") if ready is not None and current else "Unknown"
    if ready_status == "True":
        return {"State": "Active", "LastUpdateStatus": "Successful"}
    if ready_status == "False" and ready is not None:
        reason = str(ready.get("message") or ready.get("reason") or "the update failed")
        code = _REASON_CODES.get(str(ready.get("reason")), "InternalError")
        failed: StateFields = {
            "State": "Active" if served else "Failed",
            "LastUpdateStatus": "Failed",
            "LastUpdateStatusReason": reason,
            "LastUpdateStatusReasonCode": code,
        }
        if not served:
            failed["StateReason"] = reason
            failed["StateReasonCode"] = code
        return failed
    if served:
        return {
            "State": "Active",
            "LastUpdateStatus": "InProgress",
            "LastUpdateStatusReason": _UPDATING,
        }
    return {
        "State": "Pending",
        "StateReason": _CREATING,
        "StateReasonCode": "Creating",
        "LastUpdateStatus": "InProgress",
        "LastUpdateStatusReason": _CREATING,
    }


# -- Configuration ----------------------------------------------------------------------------


def default_role(namespace: str, service_account: str | None) -> str:
    """The Role shown when none was given: the pods' identity, spelled as an IAM role ARN."""
    return f"arn:aws:iam::{namespace}:role/{service_account or 'default'}"


def function_configuration(
    function: Function,
    facts: ObjectFacts,
    code: CodeFacts | None,
    *,
    region: str,
    version: str = LATEST,
    role: str | None = None,
    description: str = "",
) -> FunctionConfiguration:
    """GetFunctionConfiguration's answer for `$LATEST` (a Function) or a published version.

    ``code`` None: the code is not described rather than invented (CodeSha256/CodeSize left out).
    """
    namespace, name, spec = function.metadata.namespace, function.metadata.name, function.spec
    qualifier = None if version == LATEST else version
    state = function_state(facts.status, facts.generation)
    configuration: FunctionConfiguration = {
        "FunctionName": name,
        "FunctionArn": function_arn(namespace, name, region=region, qualifier=qualifier),
        "Runtime": spec.runtime,
        "Role": role or default_role(namespace, spec.pod_template.service_account_name),
        "Handler": spec.handler,
        "Description": description,
        "Timeout": spec.timeout_seconds,
        "MemorySize": spec.memory_mb,
        "LastModified": last_modified(facts),
        "Version": version,
        "RevisionId": revision_id(facts.uid, facts.generation),
        "PackageType": code.package_type if code else "Image" if spec.code.image else "Zip",
        "TracingConfig": {"Mode": spec.tracing.mode},
        "State": state["State"],
        "LastUpdateStatus": state["LastUpdateStatus"],
    }
    if code is not None:
        configuration["CodeSize"] = code.size
        configuration["CodeSha256"] = code.sha256
    # Spelled out: mypy cannot check a TypedDict merged from another with **.
    if "StateReason" in state:
        configuration["StateReason"] = state["StateReason"]
    if "StateReasonCode" in state:
        configuration["StateReasonCode"] = state["StateReasonCode"]
    if "LastUpdateStatusReason" in state:
        configuration["LastUpdateStatusReason"] = state["LastUpdateStatusReason"]
    if "LastUpdateStatusReasonCode" in state:
        configuration["LastUpdateStatusReasonCode"] = state["LastUpdateStatusReasonCode"]
    if spec.environment:
        configuration["Environment"] = {"Variables": dict(spec.environment)}
    return configuration


def get_function_response(
    configuration: FunctionConfiguration,
    location: str,
    *,
    tags: Mapping[str, str] | None = None,
    reserved: int | None = None,
    repository_type: str = "S3",
) -> GetFunctionResponse:
    """GetFunction's answer: the configuration, where the code can be fetched, tags, concurrency."""
    response: GetFunctionResponse = {
        "Configuration": configuration,
        "Code": {"RepositoryType": repository_type, "Location": location},
    }
    if tags:
        response["Tags"] = dict(tags)
    if reserved is not None:
        response["Concurrency"] = {"ReservedConcurrentExecutions": reserved}
    return response
