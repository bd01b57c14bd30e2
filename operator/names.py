"""Every name and label the operator gives to the objects it makes, computed in one place.

Builders, reconcilers, the gateway's discovery and the tests all derive names from here, so a
renamed child cannot leave one of them looking for the old name. Kubernetes limits most names to
63 characters; a child name that would be longer is cut and made unique with a short hash.
"""

from __future__ import annotations

import hashlib

from kfaas.manifests import API_GROUP
from kfaas.names import LATEST

MANAGED_BY = "kfaas-operator"
FIELD_MANAGER = "kfaas-operator"
AUTOSCALER_FIELD_MANAGER = "kfaas-autoscaler"

FUNCTION_LABEL = f"{API_GROUP}/function"
# On a published version's children (ADR 024): which version they run.
VERSION_LABEL = f"{API_GROUP}/version"
MAPPING_LABEL = f"{API_GROUP}/event-source-mapping"
COMPONENT_LABEL = f"{API_GROUP}/component"
RUNTIME_COMPONENT = "runtime"
# A published version's pods: not "runtime", so `$LATEST`'s selector (function + component,
# immutable on its Deployment) never takes them in. Their Deployment and Service still carry
# "runtime", which the autoscaler's and the gateway's informers select.
VERSION_RUNTIME_COMPONENT = "version-runtime"
# The pods of `concurrency.provisioned` (ADR 030): a Deployment of their own, whose selector must
# not overlap the on-demand one's (immutable, function + component), hence components of their
# own; their Service still carries "runtime", so the gateway merges both Services' endpoints.
PROVISIONED_COMPONENT = "provisioned-runtime"
PROVISIONED_VERSION_COMPONENT = "provisioned-version-runtime"
POLLER_COMPONENT = "poller"
GATEWAY_COMPONENT = "gateway"

# Annotations: a hash of the desired object (write only on a difference) and the code digest.
DESIRED_HASH_ANNOTATION = f"{API_GROUP}/desired-hash"
CODE_SHA256_ANNOTATION = f"{API_GROUP}/code-sha256"
# A fingerprint of the runtime token the pods read (ADR 011): a new platform key rolls them.
RUNTIME_TOKEN_ANNOTATION = f"{API_GROUP}/runtime-token-sha256"

# The Leases in which each gateway replica reports its per-function concurrency (ADR 007).
DEMAND_LEASE_LABEL = f"{API_GROUP}/demand"

TASK_ROOT = "/var/task"
RUNTIME_PORT = 8080
POLLER_METRICS_PORT = 9090
MAX_NAME = 63


def child_name(owner: str, suffix: str) -> str:
    """``<owner>-<suffix>``, cut to 63 characters with a hash keeping cut names apart."""
    name = f"{owner}-{suffix}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = MAX_NAME - len(suffix) - len(digest) - 2
    return f"{owner[:keep].rstrip('-')}-{digest}-{suffix}"


def _version_stem(function: str, version: str) -> str:
    """`<function>-<N>`: the trailing digits are the version, so two (function, N) never meet."""
    return f"{function}-{version}"


# A version's children end in `-fnv…`/`-vcode-…` where a function's end in `-fn…`/`-code-…`:
# function names may hold `-<digits>`, so only the suffix keeps `f`'s version 2 (`f-2-fnv`)
# apart from a function named `f-2` (`f-2-fn`).


def function_workload(function: str, version: str = LATEST) -> str:
    """The Deployment, Service, ServiceAccount, NetworkPolicy and PDB of a function (or of one
    of its published versions)."""
    if version == LATEST:
        return child_name(function, "fn")
    return child_name(_version_stem(function, version), "fnv")


def provisioned_workload(function: str, version: str = LATEST) -> str:
    """The Deployment and Service of a function's (or a version's) provisioned instances."""
    if version == LATEST:
        return child_name(function, "fn-pc")
    return child_name(_version_stem(function, version), "fnv-pc")


def function_token(function: str, version: str = LATEST) -> str:
    """The Secret holding a function's (or a version's) runtime token (ADR 011)."""
    if version == LATEST:
        return child_name(function, "fn-token")
    return child_name(_version_stem(function, version), "fnv-token")


def function_code(function: str, digest: str, version: str = LATEST) -> str:
    """The ConfigMap holding one version of a function's inline code (immutable)."""
    if version == LATEST:
        return child_name(function, f"code-{digest[:10]}")
    return child_name(_version_stem(function, version), f"vcode-{digest[:10]}")


def poller(mapping: str) -> str:
    """The Deployment, ServiceAccount, Role and RoleBinding of a mapping's pollers."""
    return child_name(mapping, "poller")


def function_labels(function: str, version: str = LATEST) -> dict[str, str]:
    """The labels of a function's (or a version's) child objects; EndpointSlices copy the
    Service's, so the gateway finds a version's instances by them."""
    labels = {
        "app.kubernetes.io/name": "kfaas-function",
        "app.kubernetes.io/instance": function,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        FUNCTION_LABEL: function,
        COMPONENT_LABEL: RUNTIME_COMPONENT,
    }
    if version != LATEST:
        labels[VERSION_LABEL] = version
    return labels


def function_selector(function: str, version: str = LATEST) -> dict[str, str]:
    """What selects a function's (or a version's) pods; their labels hold it."""
    if version == LATEST:
        return {FUNCTION_LABEL: function, COMPONENT_LABEL: RUNTIME_COMPONENT}
    return {
        FUNCTION_LABEL: function,
        VERSION_LABEL: version,
        COMPONENT_LABEL: VERSION_RUNTIME_COMPONENT,
    }


def pod_labels(function: str, version: str = LATEST) -> dict[str, str]:
    """A runtime pod's own labels: the objects' labels with the selector's component."""
    return {**function_labels(function, version), **function_selector(function, version)}


def provisioned_selector(function: str, version: str = LATEST) -> dict[str, str]:
    """What selects a function's (or a version's) provisioned pods, and only those."""
    component = PROVISIONED_COMPONENT if version == LATEST else PROVISIONED_VERSION_COMPONENT
    return {**function_selector(function, version), COMPONENT_LABEL: component}


def provisioned_pod_labels(function: str, version: str = LATEST) -> dict[str, str]:
    return {**function_labels(function, version), **provisioned_selector(function, version)}


def all_pods_selector(function: str, version: str = LATEST) -> dict[str, object]:
    """A label selector (matchLabels and matchExpressions) of every runtime pod of a function
    (or a version): on-demand and provisioned, for its NetworkPolicy and PodDisruptionBudget."""
    labels = function_selector(function, version)
    components = [labels.pop(COMPONENT_LABEL)]
    components.append(provisioned_selector(function, version)[COMPONENT_LABEL])
    return {
        "matchLabels": labels,
        "matchExpressions": [{"key": COMPONENT_LABEL, "operator": "In", "values": components}],
    }


def poller_labels(mapping: str, function: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "kfaas-poller",
        "app.kubernetes.io/instance": mapping,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        MAPPING_LABEL: mapping,
        FUNCTION_LABEL: function,
        COMPONENT_LABEL: POLLER_COMPONENT,
    }


def poller_selector(mapping: str) -> dict[str, str]:
    return {MAPPING_LABEL: mapping, COMPONENT_LABEL: POLLER_COMPONENT}
