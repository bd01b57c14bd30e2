"""Lambda's EventSourceMapping requests as EventSourceMapping specs (ADR 024).

A Kafka mapping is Lambda's self-managed Kafka: `SelfManagedEventSource.Endpoints.
KAFKA_BOOTSTRAP_SERVERS` and `Topics`; a Redis stream mapping is named by the EventSourceArn
`arn:kfaas:redis:::stream/<stream>` and reads the platform's Redis (the gateway passes its URL,
which is refused when it holds credentials: the spec would show them). Failure destinations are
`arn:kfaas:kafka:::topic/<t>` / `arn:kfaas:redis:::stream/<s>` (``kfaas.lambda_settings``' one
encode/parse pair). `SourceAccessConfigurations` are the Kafka source's `tls`/`auth` Secrets
(``kfaas.lambda_kafka_access``). Every other request field is refused naming it. The answers'
side is ``kfaas.lambda_mapping_shapes``. Pure: camelCase spec dictionaries in and out.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from typing import Any, Final

from .lambda_kafka_access import apply_access
from .lambda_settings import (
    REDIS_PREFIX,
    destination_of,
    integer,
    refuse_unknown,
)
from .lambda_shapes import InvalidParameter
from .manifests import QUALIFIER_PATTERN
from .names import LATEST, InvalidFunctionName, QualifierMismatch
from .names import parse_function_name as _parse_name

Spec = dict[str, Any]

KAFKA_ENDPOINT: Final = "KAFKA_BOOTSTRAP_SERVERS"
POSITIONS: Final = ("LATEST", "TRIM_HORIZON")
# What each request field is in the spec (settings both Create and Update take).
# A mapping's qualifier as its spec holds it (a version number or an alias, ADR 024).
_QUALIFIER: Final = re.compile(QUALIFIER_PATTERN)
_SETTINGS: Final = (
    "Enabled",
    "BatchSize",
    "MaximumBatchingWindowInSeconds",
    "MaximumRetryAttempts",
    "MaximumRecordAgeInSeconds",
    "BisectBatchOnFunctionError",
    "FunctionResponseTypes",
    "FilterCriteria",
    "DestinationConfig",
    "ProvisionedPollerConfig",
    "SelfManagedKafkaEventSourceConfig",
    "SourceAccessConfigurations",
    "FunctionName",
)
CREATE_FIELDS: Final = frozenset(
    {*_SETTINGS, "EventSourceArn", "SelfManagedEventSource", "Topics", "StartingPosition", "Tags"}
)
UPDATE_FIELDS: Final = frozenset(_SETTINGS)


def function_of(raw: Any, default_namespace: str) -> tuple[str, str]:
    """The (namespace, name) a FunctionName names, whatever its qualifier."""
    namespace, name, _ = qualified_function_of(raw, default_namespace)
    return namespace, name


def qualified_function_of(raw: Any, default_namespace: str) -> tuple[str, str, str | None]:
    """The (namespace, name, qualifier) a FunctionName names; the qualifier (a version or an
    alias, as Lambda accepts) is None for `$LATEST`."""
    if not isinstance(raw, str) or not raw:
        raise InvalidParameter("FunctionName", "FunctionName is required")
    try:
        ref = _parse_name(raw, default_namespace)
    except (InvalidFunctionName, QualifierMismatch) as exc:
        raise InvalidParameter("FunctionName", f"FunctionName: {exc}") from None
    qualifier = None if ref.qualifier in (None, LATEST) else ref.qualifier
    if qualifier is not None and not _QUALIFIER.fullmatch(qualifier):
        raise InvalidParameter(
            "FunctionName",
            f"FunctionName: qualifier {qualifier!r} must be a version number or an alias name",
        )
    return ref.namespace, ref.name, qualifier


def _qualified(spec: Spec, name: str, qualifier: str | None) -> None:
    spec["functionName"] = name
    if qualifier is None:
        spec.pop("qualifier", None)
    else:
        spec["qualifier"] = qualifier


def _boolean(request: Mapping[str, Any], parameter: str) -> bool | None:
    value = request.get(parameter)
    if value is not None and not isinstance(value, bool):
        raise InvalidParameter(parameter, f"{parameter} must be true or false, got {value!r}")
    return value


def _text(value: Any, parameter: str) -> str:
    if not isinstance(value, str) or not value or any(c.isspace() or c == "," for c in value):
        raise InvalidParameter(
            parameter, f"{parameter} must be a non-empty name without spaces or commas"
        )
    return value


def _holds_credentials(url: str) -> bool:
    """A user, a password or a password parameter: not to be copied into a user's object."""
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    return bool(parts.username or parts.password or "password" in query or "username" in query)


def _source(request: Mapping[str, Any], redis_url: str | None) -> Spec:
    """The spec's ``kafka`` or ``redis`` object for a CreateEventSourceMapping request."""
    position = request.get("StartingPosition", "LATEST")
    if position not in POSITIONS:
        raise InvalidParameter(
            "StartingPosition", f"StartingPosition must be LATEST or TRIM_HORIZON, got {position!r}"
        )
    arn, managed = request.get("EventSourceArn"), request.get("SelfManagedEventSource")
    if (arn is None) == (managed is None):
        raise InvalidParameter(
            "EventSourceArn",
            "Give exactly one of EventSourceArn (arn:kfaas:redis:::stream/<stream>) and "
            "SelfManagedEventSource (Kafka)",
        )
    if arn is not None:
        if not isinstance(arn, str) or not arn.startswith(REDIS_PREFIX):
            raise InvalidParameter(
                "EventSourceArn",
                f"EventSourceArn {arn!r} must be {REDIS_PREFIX}<stream> "
                "(Kafka is given as SelfManagedEventSource)",
            )
        if request.get("Topics") is not None:
            raise InvalidParameter("Topics", "Topics is for Kafka sources only")
        if redis_url is None:
            raise InvalidParameter(
                "EventSourceArn", "EventSourceArn: this platform has no Redis (KFAAS_REDIS_URL)"
            )
        if _holds_credentials(redis_url):
            raise InvalidParameter(
                "EventSourceArn",
                "EventSourceArn: the platform's Redis URL holds credentials, which the mapping "
                "would show to everyone who may read it; apply the mapping with kubectl instead",
            )
        stream = arn[len(REDIS_PREFIX) :]
        _text(stream, "EventSourceArn")
        return {"redis": {"url": redis_url, "stream": stream, "startingPosition": position}}
    endpoints = managed.get("Endpoints") if isinstance(managed, Mapping) else None
    servers = endpoints.get(KAFKA_ENDPOINT) if isinstance(endpoints, Mapping) else None
    if not isinstance(servers, list) or not servers or set(endpoints or {}) != {KAFKA_ENDPOINT}:
        raise InvalidParameter(
            "SelfManagedEventSource",
            f"SelfManagedEventSource must be {{Endpoints: {{{KAFKA_ENDPOINT}: [host:port, ...]}}}}",
        )
    topics = request.get("Topics")
    if not isinstance(topics, list) or len(topics) != 1:
        raise InvalidParameter("Topics", "Topics must name exactly one Kafka topic")
    return {
        "kafka": {
            "bootstrapServers": ",".join(_text(s, KAFKA_ENDPOINT) for s in servers),
            "topic": _text(topics[0], "Topics"),
            "startingPosition": position,
        }
    }


def _apply(spec: Spec, request: Mapping[str, Any], *, namespace: str, region: str) -> None:
    """Write the settings a request gives over ``spec`` (Create's and Update's shared fields)."""
    for parameter, key in (
        ("Enabled", "enabled"),
        ("BisectBatchOnFunctionError", "bisectBatchOnFunctionError"),
    ):
        value = _boolean(request, parameter)
        if value is not None:
            spec[key] = value
    for parameter, key, low, high in (
        ("BatchSize", "batchSize", 1, 10000),
        ("MaximumRetryAttempts", "maximumRetryAttempts", -1, 10000),
        ("MaximumRecordAgeInSeconds", "maximumRecordAgeSeconds", -1, 604800),
        ("MaximumBatchingWindowInSeconds", "maximumBatchingWindowSeconds", 0, 300),
    ):
        number = integer(request, parameter, low, high)
        if number is not None:
            spec[key] = number
    if "FunctionResponseTypes" in request:
        types = request["FunctionResponseTypes"]
        if not isinstance(types, list) or not set(types) <= {"ReportBatchItemFailures"}:
            raise InvalidParameter(
                "FunctionResponseTypes", "FunctionResponseTypes may hold ReportBatchItemFailures"
            )
        spec["functionResponseTypes"] = sorted(set(types))
    if "FilterCriteria" in request:
        _filters(spec, request["FilterCriteria"])
    if "DestinationConfig" in request:
        _destination(spec, request["DestinationConfig"], namespace=namespace, region=region)
    if "ProvisionedPollerConfig" in request:
        spec["parallelism"] = _pollers(request["ProvisionedPollerConfig"])
    if "SelfManagedKafkaEventSourceConfig" in request:
        _consumer_group(spec, request["SelfManagedKafkaEventSourceConfig"])
    if "SourceAccessConfigurations" in request:
        if "kafka" not in spec:
            raise InvalidParameter(
                "SourceAccessConfigurations", "SourceAccessConfigurations is for Kafka sources only"
            )
        apply_access(spec["kafka"], request["SourceAccessConfigurations"])


def _filters(spec: Spec, criteria: Any) -> None:
    filters = criteria.get("Filters") if isinstance(criteria, Mapping) else None
    if not isinstance(criteria, Mapping) or set(criteria) - {"Filters"}:
        raise InvalidParameter("FilterCriteria", "FilterCriteria must be {Filters: [{Pattern}]}")
    patterns = []
    for entry in filters or []:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("Pattern"), str):
            raise InvalidParameter("FilterCriteria", "each of FilterCriteria.Filters has a Pattern")
        patterns.append({"pattern": entry["Pattern"]})
    if patterns:
        spec["filterCriteria"] = {"filters": patterns}
    else:
        spec.pop("filterCriteria", None)


def _destination(spec: Spec, config: Any, *, namespace: str, region: str) -> None:
    if not isinstance(config, Mapping) or set(config) - {"OnFailure", "OnSuccess"}:
        raise InvalidParameter("DestinationConfig", "DestinationConfig must be {OnFailure}")
    if (config.get("OnSuccess") or {}).get("Destination"):
        raise InvalidParameter(
            "DestinationConfig.OnSuccess",
            "DestinationConfig.OnSuccess: a mapping has on-failure destinations only",
        )
    current = (spec.get("destinationConfig") or {}).get("onFailure")
    target = destination_of(
        config.get("OnFailure"),
        current,
        namespace=namespace,
        region=region,
        parameter="DestinationConfig.OnFailure",
        functions=False,
    )
    if target is None:
        spec.pop("destinationConfig", None)
    else:
        spec["destinationConfig"] = {"onFailure": target}


def _pollers(config: Any) -> int:
    if not isinstance(config, Mapping) or set(config) - {"MinimumPollers", "MaximumPollers"}:
        raise InvalidParameter(
            "ProvisionedPollerConfig",
            "ProvisionedPollerConfig takes MinimumPollers, MaximumPollers",
        )
    low = integer(config, "MinimumPollers", 1, 200)
    high = integer(config, "MaximumPollers", 1, 10000)
    count = low or high or 1
    if low is not None and high is not None and low != high:
        raise InvalidParameter(
            "ProvisionedPollerConfig",
            "ProvisionedPollerConfig: kfaas runs a fixed number of pollers "
            "(spec.parallelism); give MinimumPollers equal to MaximumPollers",
        )
    return count


def _consumer_group(spec: Spec, config: Any) -> None:
    if not isinstance(config, Mapping) or set(config) - {"ConsumerGroupId"}:
        raise InvalidParameter(
            "SelfManagedKafkaEventSourceConfig",
            "SelfManagedKafkaEventSourceConfig takes ConsumerGroupId only",
        )
    if "kafka" not in spec:
        raise InvalidParameter(
            "SelfManagedKafkaEventSourceConfig", "ConsumerGroupId is for Kafka sources only"
        )
    if config.get("ConsumerGroupId") is not None:
        spec["kafka"]["consumerGroupId"] = _text(config["ConsumerGroupId"], "ConsumerGroupId")


def create_spec(
    request: Mapping[str, Any], *, default_namespace: str, region: str, redis_url: str | None
) -> tuple[str, Spec]:
    """CreateEventSourceMapping: the namespace and the new mapping's spec."""
    refuse_unknown(request, CREATE_FIELDS, "an event source mapping")
    namespace, name, qualifier = qualified_function_of(
        request.get("FunctionName"), default_namespace
    )
    spec: Spec = {"functionName": name, **_source(request, redis_url)}
    _qualified(spec, name, qualifier)
    _apply(spec, request, namespace=namespace, region=region)
    return namespace, spec


def update_spec(
    current: Mapping[str, Any], request: Mapping[str, Any], *, namespace: str, region: str
) -> Spec:
    """UpdateEventSourceMapping: the given settings over the current spec (same namespace)."""
    refuse_unknown(request, UPDATE_FIELDS, "UpdateEventSourceMapping")
    spec: Spec = {key: value for key, value in current.items()}
    if "FunctionName" in request:
        function_namespace, name, qualifier = qualified_function_of(
            request["FunctionName"], namespace
        )
        if function_namespace != namespace:
            raise InvalidParameter(
                "FunctionName", f"FunctionName: the function must be in namespace {namespace!r}"
            )
        _qualified(spec, name, qualifier)
    _apply(spec, request, namespace=namespace, region=region)
    return spec
