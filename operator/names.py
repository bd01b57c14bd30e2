"""Every name and label the operator gives to the objects it makes, computed in one place.

Builders, reconcilers, the gateway's discovery and the tests all derive names from here, so a
renamed child cannot leave one of them looking for the old name. Kubernetes limits most names to
63 characters; a child name that would be longer is cut and made unique with a short hash.
"""

from __future__ import annotations

import hashlib

from kfaas.manifests import API_GROUP

MANAGED_BY = "kfaas-operator"
FIELD_MANAGER = "kfaas-operator"
AUTOSCALER_FIELD_MANAGER = "kfaas-autoscaler"

FUNCTION_LABEL = f"{API_GROUP}/function"
MAPPING_LABEL = f"{API_GROUP}/event-source-mapping"
COMPONENT_LABEL = f"{API_GROUP}/component"
RUNTIME_COMPONENT = "runtime"
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


def function_workload(function: str) -> str:
    """The Deployment, Service, ServiceAccount, NetworkPolicy and PDB of a function."""
    return child_name(function, "fn")


def function_token(function: str) -> str:
    """The Secret holding a function's runtime token (ADR 011)."""
    return child_name(function, "fn-token")


def function_code(function: str, digest: str) -> str:
    """The ConfigMap holding one version of a function's inline code (immutable)."""
    return child_name(function, f"code-{digest[:10]}")


def poller(mapping: str) -> str:
    """The Deployment, ServiceAccount, Role and RoleBinding of a mapping's pollers."""
    return child_name(mapping, "poller")


def function_labels(function: str) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": "kfaas-function",
        "app.kubernetes.io/instance": function,
        "app.kubernetes.io/managed-by": MANAGED_BY,
        FUNCTION_LABEL: function,
        COMPONENT_LABEL: RUNTIME_COMPONENT,
    }


def function_selector(function: str) -> dict[str, str]:
    return {FUNCTION_LABEL: function, COMPONENT_LABEL: RUNTIME_COMPONENT}


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
