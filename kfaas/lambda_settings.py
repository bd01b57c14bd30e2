"""Lambda's per-function settings as a Function's spec holds them (ADR 024, slice 5).

`PutFunctionConcurrency` is `spec.concurrency.reserved`; `Put/UpdateFunctionEventInvokeConfig`
is `spec.async` (Put replaces, Update merges); `GetAccountSettings` is counted over the functions a
caller may list. Destinations cross between Lambda's ARNs and the spec's `{function|kafka|redis}`
objects through one pair, ``parse_destination`` and ``encode_destination`` (STYLE 21):

- `arn:aws:lambda:<region>:<namespace>:function:<name>` ↔ `{function: {name}}` (same namespace);
- `arn:kfaas:kafka:::topic/<topic>` ↔ `{kafka: {topic}}` (the platform's Kafka);
- `arn:kfaas:redis:::stream/<stream>` ↔ `{redis: {stream}}` (the platform's Redis).

A destination naming a server of its own (written with kubectl) is shown by its topic or stream
only (a Redis URL may hold a password) and is kept as it is while a request names the same ARN.
Pure: spec dictionaries (camelCase, as the API object holds them) in and out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from .code_archives import MAX_UNZIPPED_BYTES, MAX_ZIPPED_BYTES
from .lambda_code import files_code
from .lambda_shapes import InvalidParameter
from .manifests import QUALIFIER_PATTERN
from .names import LATEST, InvalidFunctionName, function_arn, parse_function_name

Spec = dict[str, Any]

KAFKA_PREFIX: Final = "arn:kfaas:kafka:::topic/"
REDIS_PREFIX: Final = "arn:kfaas:redis:::stream/"
# Lambda's limits on DestinationArn and on the async settings (botocore's model).
_ARN_LIMIT: Final = 350
_QUALIFIER: Final = re.compile(QUALIFIER_PATTERN)
RETRIES: Final = (0, 2)
EVENT_AGE: Final = (60, 21600)
DEFAULT_RETRIES: Final = 2
DEFAULT_EVENT_AGE: Final = 21600
# Lambda's default account quota on stored code; kfaas enforces none (its code store's volume
# is the bound), and reports this so tools comparing usage with a limit keep working.
TOTAL_CODE_LIMIT: Final = 80 * 1024**3
_EVENT_INVOKE_FIELDS: Final = frozenset(
    {"MaximumRetryAttempts", "MaximumEventAgeInSeconds", "DestinationConfig"}
)


def integer(request: Mapping[str, Any], parameter: str, low: int, high: int | None) -> int | None:
    """The request's integer ``parameter`` within [low, high], None when absent."""
    value = request.get(parameter)
    if value is None:
        return None
    bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidParameter(parameter, f"{parameter} must be an integer {bound}, got {value!r}")
    if value < low or (high is not None and value > high):
        raise InvalidParameter(parameter, f"{parameter} must be an integer {bound}, got {value}")
    return value


def refuse_unknown(request: Mapping[str, Any], known: Iterable[str], what: str) -> None:
    """Refuse the first request field kfaas does not map, naming it."""
    allowed = set(known)
    for field in request:
        if field not in allowed:
            raise InvalidParameter(field, f"{field} is not supported by kfaas for {what}")


# -- Destinations ------------------------------------------------------------------------------


def _name_after(arn: str, prefix: str, parameter: str) -> str:
    name = arn[len(prefix) :]
    if not name or any(char.isspace() or ord(char) < 0x20 or ord(char) == 0x7F for char in name):
        raise InvalidParameter(
            parameter, f"{parameter}: {arn!r} must name a topic or stream without spaces"
        )
    return name


def parse_destination(arn: str, *, namespace: str, parameter: str, functions: bool = True) -> Spec:
    """The spec's destination object for a Lambda destination ARN (``functions``: may it be one)."""
    if not isinstance(arn, str) or len(arn) > _ARN_LIMIT:
        raise InvalidParameter(parameter, f"{parameter} must be an ARN of at most {_ARN_LIMIT}")
    if arn.startswith(KAFKA_PREFIX):
        return {"kafka": {"topic": _name_after(arn, KAFKA_PREFIX, parameter)}}
    if arn.startswith(REDIS_PREFIX):
        return {"redis": {"stream": _name_after(arn, REDIS_PREFIX, parameter)}}
    kinds = f"{KAFKA_PREFIX}<topic> or {REDIS_PREFIX}<stream>"
    if functions and arn.startswith("arn:") and ":function:" in arn:
        try:
            ref = parse_function_name(arn, namespace)
        except InvalidFunctionName as exc:
            raise InvalidParameter(parameter, f"{parameter}: {exc}") from None
        if ref.namespace != namespace:
            raise InvalidParameter(
                parameter,
                f"{parameter}: a destination function must be in namespace {namespace!r}",
            )
        if ref.qualifier in (None, LATEST):
            return {"function": {"name": ref.name}}
        if not _QUALIFIER.fullmatch(ref.qualifier):
            raise InvalidParameter(
                parameter,
                f"{parameter}: qualifier {ref.qualifier!r} must be a version number or an alias",
            )
        # A version or an alias (its pick made when the record is queued), as Lambda accepts.
        return {"function": {"name": ref.name, "qualifier": ref.qualifier}}
    if functions:
        kinds = f"a Lambda function ARN, {kinds}"
    raise InvalidParameter(parameter, f"{parameter} {arn!r} must be {kinds}")


def encode_destination(destination: Mapping[str, Any], *, namespace: str, region: str) -> str:
    """The ARN Lambda's API shows for a spec destination object."""
    if destination.get("function"):
        target = destination["function"]
        return function_arn(namespace, str(target["name"]), region, target.get("qualifier"))
    if destination.get("kafka"):
        return KAFKA_PREFIX + str(destination["kafka"]["topic"])
    if destination.get("redis"):
        return REDIS_PREFIX + str(destination["redis"]["stream"])
    raise ValueError(f"not a destination: {dict(destination)!r}")


def destination_of(
    request: Any,
    current: Mapping[str, Any] | None,
    *,
    namespace: str,
    region: str,
    parameter: str,
    functions: bool = True,
) -> Spec | None:
    """A request's ``{"Destination": arn}`` as a spec destination; None when empty.

    The current destination is kept when the request names its ARN, so a server it names of its
    own (written with kubectl, not shown) survives a Get-then-Put round trip.
    """
    if request is None:
        return None
    if not isinstance(request, Mapping) or set(request) - {"Destination"}:
        raise InvalidParameter(parameter, f"{parameter} must be an object with Destination")
    arn = request.get("Destination")
    if arn is None or arn == "":
        return None
    if current and encode_destination(current, namespace=namespace, region=region) == arn:
        return dict(current)
    return parse_destination(arn, namespace=namespace, parameter=parameter, functions=functions)


# -- Event invoke config (spec.async) ----------------------------------------------------------


def is_configured(spec: Mapping[str, Any]) -> bool:
    """Whether the function has an EventInvokeConfig: a non-empty ``spec.async``."""
    return bool(spec.get("async"))


def event_invoke_config(
    spec: Mapping[str, Any], *, namespace: str, name: str, region: str, last_modified: float
) -> dict[str, Any]:
    """botocore's FunctionEventInvokeConfig for the function's ``spec.async``."""
    config = spec.get("async") or {}
    destinations: dict[str, Any] = {}
    for side, key in (("OnSuccess", "onSuccess"), ("OnFailure", "onFailure")):
        target = config.get(key)
        destinations[side] = (
            {"Destination": encode_destination(target, namespace=namespace, region=region)}
            if target
            else {}
        )
    return {
        "LastModified": last_modified,
        "FunctionArn": function_arn(namespace, name, region, LATEST),
        "MaximumRetryAttempts": config.get("maximumRetryAttempts", DEFAULT_RETRIES),
        "MaximumEventAgeInSeconds": config.get("maximumEventAgeSeconds", DEFAULT_EVENT_AGE),
        "DestinationConfig": destinations,
    }


def _apply_async(
    base: Spec, current: Mapping[str, Any], request: Mapping[str, Any], namespace: str, region: str
) -> Spec:
    refuse_unknown(request, _EVENT_INVOKE_FIELDS, "an EventInvokeConfig")
    retries = integer(request, "MaximumRetryAttempts", *RETRIES)
    if retries is not None:
        base["maximumRetryAttempts"] = retries
    age = integer(request, "MaximumEventAgeInSeconds", *EVENT_AGE)
    if age is not None:
        base["maximumEventAgeSeconds"] = age
    config = request.get("DestinationConfig")
    if config is None:
        return base
    if not isinstance(config, Mapping) or set(config) - {"OnSuccess", "OnFailure"}:
        raise InvalidParameter(
            "DestinationConfig", "DestinationConfig must be an object with OnSuccess, OnFailure"
        )
    for side, key in (("OnSuccess", "onSuccess"), ("OnFailure", "onFailure")):
        if side not in config:
            continue
        target = destination_of(
            config[side],
            current.get(key),
            namespace=namespace,
            region=region,
            parameter=f"DestinationConfig.{side}",
        )
        if target is None:
            base.pop(key, None)
        else:
            base[key] = target
    return base


def put_event_invoke_config(
    current: Mapping[str, Any] | None, request: Mapping[str, Any], *, namespace: str, region: str
) -> Spec:
    """PutFunctionEventInvokeConfig: the new ``spec.async``, replacing everything.

    Settings not given take Lambda's defaults; they are written out so the configuration exists
    (``is_configured``) even when the request names nothing.
    """
    base: Spec = {
        "maximumRetryAttempts": DEFAULT_RETRIES,
        "maximumEventAgeSeconds": DEFAULT_EVENT_AGE,
    }
    return _apply_async(base, current or {}, request, namespace, region)


def update_event_invoke_config(
    current: Mapping[str, Any] | None, request: Mapping[str, Any], *, namespace: str, region: str
) -> Spec:
    """UpdateFunctionEventInvokeConfig: the given settings merged over the current ones."""
    base: Spec = {
        "maximumRetryAttempts": DEFAULT_RETRIES,
        "maximumEventAgeSeconds": DEFAULT_EVENT_AGE,
        **(current or {}),
    }
    return _apply_async(base, current or {}, request, namespace, region)


# -- Reserved concurrency ----------------------------------------------------------------------


def reserved_concurrency(request: Mapping[str, Any]) -> int:
    """PutFunctionConcurrency's ReservedConcurrentExecutions (required, ≥ 0)."""
    refuse_unknown(request, ("ReservedConcurrentExecutions",), "PutFunctionConcurrency")
    value = integer(request, "ReservedConcurrentExecutions", 0, None)
    if value is None:
        raise InvalidParameter(
            "ReservedConcurrentExecutions", "ReservedConcurrentExecutions is required"
        )
    return value


def reserved_of(spec: Mapping[str, Any]) -> int | None:
    value = (spec.get("concurrency") or {}).get("reserved")
    return value if isinstance(value, int) else None


# -- Account settings ----------------------------------------------------------------------------


def code_size(spec: Mapping[str, Any]) -> int:
    """The bytes a function's code counts for: an uploaded zip's size, inline code's canonical zip.

    ConfigMap and image code are not counted (the gateway does not read them).
    """
    code = spec.get("code") or {}
    if code.get("zip"):
        return int(code["zip"].get("size", 0))
    if code.get("inline"):
        files = {name: str(text).encode() for name, text in code["inline"].items()}
        return files_code(files).size
    return 0


def _max_concurrency(spec: Mapping[str, Any]) -> int:
    scaling, concurrency = spec.get("scaling") or {}, spec.get("concurrency") or {}
    reach = int(scaling.get("maxInstances", 100)) * int(concurrency.get("perInstance", 1))
    reserved = reserved_of(spec)
    return reach if reserved is None else min(reach, reserved)


def account_settings(specs: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """GetAccountSettings over the specs of the functions the caller may list.

    - ``AccountUsage.FunctionCount``: those functions; ``TotalCodeSize``: their ``code_size``.
    - ``AccountLimit.ConcurrentExecutions``: the concurrent executions they can reach together
      (each ``maxInstances * perInstance``, capped by its reserved concurrency);
      ``UnreservedConcurrentExecutions``: the part of it of functions without reserved concurrency.
    - ``CodeSizeZipped``/``CodeSizeUnzipped``: the upload limits the code store enforces;
      ``TotalCodeSize``: Lambda's default quota (kfaas enforces none).
    """
    specs = list(specs)
    return {
        "AccountLimit": {
            "TotalCodeSize": TOTAL_CODE_LIMIT,
            "CodeSizeUnzipped": MAX_UNZIPPED_BYTES,
            "CodeSizeZipped": MAX_ZIPPED_BYTES,
            "ConcurrentExecutions": sum(_max_concurrency(spec) for spec in specs),
            "UnreservedConcurrentExecutions": sum(
                _max_concurrency(spec) for spec in specs if reserved_of(spec) is None
            ),
        },
        "AccountUsage": {
            "TotalCodeSize": sum(code_size(spec) for spec in specs),
            "FunctionCount": len(specs),
        },
    }
