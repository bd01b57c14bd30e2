"""Function names as Lambda clients spell them, and the ARNs kfaas hands back.

boto3 and the AWS CLI name a function in several ways (plain name, `name:qualifier`, full or
partial ARN); kfaas adds `namespace/name`. The gateway, the CLI and the async dispatcher must all
resolve them the same way, with Lambda's error for a qualifier that contradicts the `Qualifier`
parameter. A kfaas namespace plays the part of the AWS account in ARNs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# Lambda's own limits: names up to 64 characters of [a-zA-Z0-9-_], qualifiers up to 128.
# Names that break Kubernetes' rules but not Lambda's are left to resolve as "not found",
# as Lambda would answer for a function that does not exist.
_NAME = r"[a-zA-Z0-9_-]{1,64}"
_QUALIFIER = r"[a-zA-Z0-9$_-]{1,128}"
_NAMESPACE = r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?"

_FULL_ARN = re.compile(
    rf"arn:[a-z-]+:lambda:[a-z0-9-]*:(?P<namespace>{_NAMESPACE}):function:"
    rf"(?P<name>{_NAME})(:(?P<qualifier>{_QUALIFIER}))?"
)
_PARTIAL_ARN = re.compile(
    rf"(?P<namespace>{_NAMESPACE}):function:(?P<name>{_NAME})(:(?P<qualifier>{_QUALIFIER}))?"
)
_SHORT = re.compile(
    rf"((?P<namespace>{_NAMESPACE})/)?(?P<name>{_NAME})(:(?P<qualifier>{_QUALIFIER}))?"
)

LATEST = "$LATEST"


class InvalidFunctionName(ValueError):
    """The name matches none of the accepted spellings."""


class QualifierMismatch(ValueError):
    """The qualifier in the name contradicts the separately given qualifier."""

    def __init__(self) -> None:
        super().__init__(
            "The derived qualifier from the function name does not match the specified qualifier."
        )


@dataclass(frozen=True)
class FunctionRef:
    namespace: str
    name: str
    # As asked for (`$LATEST`, a version or an alias); the registry resolves it to what runs.
    qualifier: str | None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_function_name(
    raw: str, default_namespace: str, qualifier: str | None = None
) -> FunctionRef:
    """Resolve a FunctionName (already URL-decoded) and an optional `Qualifier` parameter."""
    for pattern in (_FULL_ARN, _PARTIAL_ARN, _SHORT):
        match = pattern.fullmatch(raw)
        if match:
            break
    else:
        raise InvalidFunctionName(f"Function name {raw!r} is not a valid function name or ARN")
    derived = match["qualifier"]
    # An empty Qualifier query parameter means "none given", as botocore sends it.
    given = qualifier or None
    if derived is not None and given is not None and derived != given:
        raise QualifierMismatch()
    return FunctionRef(
        namespace=match["namespace"] or default_namespace,
        name=match["name"],
        qualifier=derived or given,
    )


def function_arn(
    namespace: str, name: str, region: str = "us-east-1", qualifier: str | None = None
) -> str:
    arn = f"arn:aws:lambda:{region}:{namespace}:function:{name}"
    return f"{arn}:{qualifier}" if qualifier else arn


def function_key(namespace: str, name: str, version: str = LATEST) -> str:
    """What routing, instances, demand and metrics key on: `namespace/name` for `$LATEST`,
    `namespace/name:N` for published version N (each scales on its own, ADR 024)."""
    return f"{namespace}/{name}" if version == LATEST else f"{namespace}/{name}:{version}"


def parse_function_key(key: str) -> tuple[str, str, str]:
    """`function_key`'s parts back: namespace, function name and version (`$LATEST` or N)."""
    namespace, _, rest = key.partition("/")
    name, _, version = rest.partition(":")
    return namespace, name, version or LATEST
