"""What a Function may say about its pods (`spec.podTemplate`): an allowlist, not an overlay.

The operator builds every function pod hardened (non-root, read-only root, no capabilities, no
service account token, no host namespaces). `podTemplate` used to be merged into that pod as it
was, so one Function could undo all of it. It now holds only scheduling and placement settings
(`nodeSelector`, `tolerations`, `affinity`, `topologySpreadConstraints`, `priorityClassName`,
`runtimeClassName`), CPU and extended `resources` (memory is always `memoryMB`'s), pod `metadata`
labels and annotations outside the keys that carry meaning for kfaas or for the node's security
(`kfaas.dev/…`, AppArmor/seccomp annotations, CRI-O's `io.kubernetes.…`), and a
`serviceAccountName` whose token is mounted only when the Function asks for it *and* the platform
allows it. Anything else is an unknown field: refused by pydantic in `kfaas dev`, pruned or
refused by the CRD's structural schema, and refused again by the operator for objects stored
before the schema said so. The cross-field rules are stated once more as CEL in ``CEL_RULES``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Annotated, Any, Final, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

ALLOWED_FIELDS: Final = (
    "metadata",
    "nodeSelector",
    "tolerations",
    "affinity",
    "topologySpreadConstraints",
    "priorityClassName",
    "runtimeClassName",
    "resources",
    "serviceAccountName",
    "automountServiceAccountToken",
)

# Label and annotation keys a Function may not set on its pods: kfaas's own (the NetworkPolicies
# and the gateway's discovery select pods by them, so a pod claiming another function's or a
# poller's labels would be let in where it must not be), the annotations the kubelet reads as
# security profiles (AppArmor, the legacy seccomp ones), and the container runtime's own
# (`io.kubernetes.cri-o.*`, which CRI-O may honour as privileges).
RESERVED_KEY_PATTERN: Final = (
    r"^(([a-z0-9.-]*\.)?kfaas\.dev/|([a-z0-9.-]*\.)?security\.(alpha|beta)\.kubernetes\.io/"
    r"|io\.kubernetes\.)"
)
_RESERVED_RULE: Final = (
    "keys under kfaas.dev/, *.security.alpha|beta.kubernetes.io/ and io.kubernetes. are reserved"
)
# A Kubernetes quantity ("500m", "2", "1.5", "10Gi"): kept a string, as kubectl prints it.
QUANTITY_PATTERN: Final = (
    r"^[+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+|[KMGTPE]i|[mkMGTPE])?$"
)
DNS_SUBDOMAIN: Final = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"

Quantity = Annotated[str, StringConstraints(max_length=64, pattern=QUANTITY_PATTERN)]
ObjectName = Annotated[str, StringConstraints(max_length=253, pattern=DNS_SUBDOMAIN)]
# Label, annotation and resource names: Kubernetes checks their grammar on the Deployment.
MetaKey = str


class _Model(BaseModel):
    # The same conventions as kfaas.manifests' models (camelCase, strict, unknown = error).
    model_config = ConfigDict(
        extra="forbid", strict=True, populate_by_name=True, alias_generator=to_camel
    )


def _reserved(keys: Sequence[str]) -> list[str]:
    return [key for key in keys if re.match(RESERVED_KEY_PATTERN, key)]


class PodMetadata(_Model):
    """Labels and annotations added to the pods; kfaas's own labels always win."""

    labels: dict[MetaKey, Annotated[str, StringConstraints(max_length=63)]] = Field(
        default_factory=dict, max_length=64
    )
    annotations: dict[MetaKey, str] = Field(default_factory=dict, max_length=64)

    @model_validator(mode="after")
    def _no_reserved_keys(self) -> Self:
        for what, keys in (("labels", self.labels), ("annotations", self.annotations)):
            reserved = _reserved(list(keys))
            if reserved:
                raise PydanticCustomError(
                    "kfaas_rule", f"{what} {', '.join(reserved)}: {_RESERVED_RULE}"
                )
        return self


class Toleration(_Model):
    key: Annotated[str, StringConstraints(max_length=317)] | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: Annotated[str, StringConstraints(max_length=63)] | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: int | None = None


class PodResources(_Model):
    """CPU and extended resources of the runtime container; memory is `memoryMB`'s alone."""

    requests: dict[MetaKey, Quantity] = Field(default_factory=dict, max_length=16)
    limits: dict[MetaKey, Quantity] = Field(default_factory=dict, max_length=16)

    @model_validator(mode="after")
    def _no_memory(self) -> Self:
        for what, values in (("requests", self.requests), ("limits", self.limits)):
            if "memory" in values:
                raise PydanticCustomError(
                    "kfaas_rule", f"{what}.memory: memory is set by memoryMB, not podTemplate"
                )
        return self


class PodTemplate(_Model):
    metadata: PodMetadata | None = None
    node_selector: dict[MetaKey, Annotated[str, StringConstraints(max_length=63)]] = Field(
        default_factory=dict, max_length=64
    )
    tolerations: list[Toleration] = Field(default_factory=list, max_length=64)
    # Checked by Kubernetes when the Deployment is written: placement only, nothing to escalate.
    affinity: dict[str, Any] | None = None
    topology_spread_constraints: list[dict[str, Any]] = Field(default_factory=list, max_length=16)
    priority_class_name: ObjectName | None = None
    runtime_class_name: ObjectName | None = None
    resources: PodResources | None = None
    # A ServiceAccount of the function's namespace (default: the one kfaas creates, without
    # permissions). Its token is mounted only when asked for here AND allowed by the platform.
    service_account_name: ObjectName | None = None
    automount_service_account_token: bool = False


# The model validators above, as CEL for the CRD (kfaas.operator.crdgen adds them).
_RESERVED_CEL = RESERVED_KEY_PATTERN.replace("\\", "\\\\")
CEL_RULES: Final[dict[type[BaseModel], list[dict[str, str]]]] = {
    PodMetadata: [
        {
            "rule": f"!has(self.labels) || self.labels.all(k, !k.matches('{_RESERVED_CEL}'))",
            "message": f"labels: {_RESERVED_RULE}",
        },
        {
            "rule": "!has(self.annotations) || "
            f"self.annotations.all(k, !k.matches('{_RESERVED_CEL}'))",
            "message": f"annotations: {_RESERVED_RULE}",
        },
    ],
    PodResources: [
        {
            "rule": "(!has(self.requests) || !('memory' in self.requests)) && "
            "(!has(self.limits) || !('memory' in self.limits))",
            "message": "memory is set by memoryMB, not podTemplate",
        }
    ],
}


def not_allowed(loc: Sequence[int | str]) -> str | None:
    """The message for an unknown field directly under `podTemplate`, None elsewhere."""
    if len(loc) == 3 and loc[:2] == ("spec", "podTemplate"):
        return f"is not allowed in podTemplate (allowed: {', '.join(ALLOWED_FIELDS)})"
    return None
