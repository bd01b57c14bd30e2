"""The chart's side of function pods: the runtime-token key Secret and the operator's settings.

Rendered with Helm (no cluster): what each `functions.*` value becomes in the operator's
environment, which `OperatorConfig.from_env` then reads (tests/security/test_pod_template.py).
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml
from chart.fixtures import helm
from chart.platform import render

from kfaas.operator.config import OperatorConfig

__all__ = ["helm"]


def _objects(helm: Path, *values: str) -> list[dict[str, Any]]:
    text = render(helm, "kfaas-system", *values, include_crds=False)
    return [doc for doc in yaml.safe_load_all(text) if doc]


def _env(objects: list[dict[str, Any]], deployment: str) -> dict[str, Any]:
    (found,) = [
        o for o in objects if o["kind"] == "Deployment" and o["metadata"]["name"] == deployment
    ]
    (container,) = found["spec"]["template"]["spec"]["containers"]
    return {entry["name"]: entry.get("value", entry.get("valueFrom")) for entry in container["env"]}


def test_the_runtime_token_key_is_a_kept_secret_both_components_read(helm: Path) -> None:
    objects = _objects(helm)
    (secret,) = [o for o in objects if o["metadata"]["name"] == "kfaas-runtime-token-key"]
    assert secret["kind"] == "Secret"
    assert secret["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    assert len(base64.b64decode(secret["data"]["key"])) == 64
    reference = {"secretKeyRef": {"name": "kfaas-runtime-token-key", "key": "key"}}
    for deployment in ("kfaas-operator", "kfaas-gateway"):
        assert _env(objects, deployment)["KFAAS_RUNTIME_TOKEN_KEY"] == reference, deployment
    # Each render without a cluster makes a new key; `lookup` keeps the installed one on upgrade.
    again = [o for o in _objects(helm) if o["metadata"]["name"] == "kfaas-runtime-token-key"]
    assert again[0]["data"]["key"] != secret["data"]["key"]


def test_defaults_deny_tokens_and_block_the_platform(helm: Path) -> None:
    env = _env(_objects(helm), "kfaas-operator")
    # Secrets' values (the keys) are not rendered: any text stands for them.
    config = OperatorConfig.from_env(
        {k: v if isinstance(v, str) else "from-a-secret" for k, v in env.items()}
    )
    assert not config.allow_service_account_token
    egress = config.egress
    assert egress.enabled and not egress.allow_platform_namespace
    assert not egress.allow_api_server and not egress.allow_metadata
    assert egress.gateway_ports == (8080,)
    assert egress.dns_pod_labels == (("k8s-app", "kube-dns"),)


def test_values_reach_the_operator(helm: Path) -> None:
    objects = _objects(
        helm,
        "functions.allowServiceAccountToken=true",
        "functions.egress.allowPlatformNamespace=true",
        "functions.egress.deniedCIDRs={10.244.0.0/16,10.96.0.0/12}",
        "functions.egress.apiServerCIDRs={172.18.0.2/32}",
        "functions.egress.allowedCIDRs={169.254.20.10/32}",
        "functions.egress.dns.podLabels.k8s-app=coredns",
    )
    env = _env(objects, "kfaas-operator")
    # Secrets' values (the keys) are not rendered: any text stands for them.
    config = OperatorConfig.from_env(
        {k: v if isinstance(v, str) else "from-a-secret" for k, v in env.items()}
    )
    assert config.allow_service_account_token
    assert config.egress.allow_platform_namespace
    assert config.egress.denied_cidrs == ("10.244.0.0/16", "10.96.0.0/12")
    assert config.egress.api_server_cidrs == ("172.18.0.2/32",)
    assert config.egress.allowed_cidrs == ("169.254.20.10/32",)
    assert config.egress.dns_pod_labels == (("k8s-app", "coredns"),)
    # The gateway is given the key, not the operator's function-pod settings.
    assert "KFAAS_ALLOW_SERVICE_ACCOUNT_TOKEN" not in _env(objects, "kfaas-gateway")
