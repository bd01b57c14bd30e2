"""Where function pods may connect to: the egress half of each function's NetworkPolicy.

NetworkPolicies are allow-lists that add up: once one policy with ``Egress`` selects a pod, the
pod may open only connections some rule of some such policy allows. kfaas's default allows DNS to
the cluster's resolver, the gateway's invoke port (functions call functions through the gateway,
never directly: ADR 011), the code store's port when the platform runs it (ADR 025) and
"anywhere" as an ``ipBlock`` of every address minus the link-local range (cloud metadata at
169.254.169.254 and fd00:ec2::254), minus what the platform lists as denied (its pod and
service CIDRs, the API server's addresses). The platform's own Redis and Kafka and the API server
are reached only if the platform allows them (``EgressConfig``).

What a NetworkPolicy cannot say, and docs/security.md repeats: whether an ``ipBlock`` matches
in-cluster pod addresses is up to the network plugin (Calico: yes, Cilium: no), so "anywhere"
reaches other pods — the platform's Redis included — unless the pod CIDR is denied; traffic to a
Service is judged after its ClusterIP is translated to a pod's, so a denied pod CIDR covers
Services too; host-network pods (an API server in kind, some node-local DNS caches) are addresses
like any other; and any other policy selecting function pods can only widen what they reach.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from ..config import EgressConfig, OperatorConfig

Body = dict[str, Any]

LINK_LOCAL_V4 = "169.254.0.0/16"
# AWS's IPv6 metadata endpoint (fd00:ec2::254) and the whole link-local range.
METADATA_V6 = ("fd00:ec2::254/128", "fe80::/10")


def _within(cidr: str, block: str) -> bool:
    inner, outer = ipaddress.ip_network(cidr), ipaddress.ip_network(block)
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def _anywhere(egress: EgressConfig) -> list[Body]:
    """``0.0.0.0/0`` and ``::/0`` without the denied ranges (an ``except`` must lie inside)."""
    denied = list(egress.denied_cidrs)
    if not egress.allow_api_server:
        denied += egress.api_server_cidrs
    if not egress.allow_metadata:
        denied += [LINK_LOCAL_V4, *METADATA_V6]
    peers = []
    for everything in ("0.0.0.0/0", "::/0"):
        inside = sorted({cidr for cidr in denied if _within(cidr, everything)})
        block: Body = {"cidr": everything}
        if inside:
            block["except"] = inside
        peers.append({"ipBlock": block})
    return peers


def make_egress_rules(config: OperatorConfig) -> list[Body]:
    """The egress rules of a function's NetworkPolicy."""
    egress = config.egress
    dns = {
        "to": [
            {
                "namespaceSelector": {
                    "matchLabels": {"kubernetes.io/metadata.name": egress.dns_namespace}
                },
                "podSelector": {"matchLabels": dict(egress.dns_pod_labels)},
            }
        ],
        "ports": [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}],
    }
    platform = {"kubernetes.io/metadata.name": config.platform_namespace}
    gateway = {
        "to": [
            {
                "namespaceSelector": {"matchLabels": platform},
                "podSelector": {"matchLabels": dict(config.gateway_pod_labels)},
            }
        ],
        "ports": [{"protocol": "TCP", "port": port} for port in egress.gateway_ports],
    }
    rules: list[Body] = [dns, gateway, {"to": _anywhere(egress)}]
    if config.code_store:
        # The code store's pods, where code.zip pods' init containers fetch their zip (ADR 025).
        store = {
            "namespaceSelector": {"matchLabels": platform},
            "podSelector": {"matchLabels": dict(config.code_store_pod_labels)},
        }
        rules.append(
            {"to": [store], "ports": [{"protocol": "TCP", "port": config.code_store_port}]}
        )
    if egress.allow_platform_namespace:
        rules.append({"to": [{"namespaceSelector": {"matchLabels": platform}}]})
    if egress.allow_api_server and egress.api_server_cidrs:
        rules.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in egress.api_server_cidrs]})
    if egress.allowed_cidrs:
        rules.append({"to": [{"ipBlock": {"cidr": cidr}} for cidr in egress.allowed_cidrs]})
    return rules
