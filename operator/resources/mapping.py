"""The objects behind one EventSourceMapping: the pollers' Deployment and their identity.

A poller is ``kfaas poller`` configured by the mapping itself (``KFAAS_MAPPING``, JSON) and the
gateway's URL. Each mapping's pollers get a ServiceAccount allowed to write exactly that mapping's
status (lag, last batch) and to invoke its function, nothing else.

The Secrets its Kafka ``tls`` and ``auth`` name (ADR 027) are mounted as volumes, one folder per
Secret under ``KFAAS_POLLER_SECRETS_DIR``, optional: the poller reads them at every (re)connect,
the kubelet refreshes them when the Secret changes (within about a minute), so a fixed password is
used without a rollout, and a Secret made after the mapping does not hold the pod in
ContainerCreating. Reading them through the API would need a Role with ``get`` on them, which RBAC
lets the operator grant only if it could read every Secret itself.

A mapping whose on-failure destination names no server writes to the platform's Kafka or Redis:
its pollers get the operator's own settings for them, the platform Kafka's Secrets mounted by
name at the paths its ``KFAAS_KAFKA_*_FILE`` variables name (ADR 032, ``platform_brokers``).
"""

from __future__ import annotations

import json

from kfaas.manifests import API_GROUP, EventSourceMapping, KafkaAuth, KafkaTls, StreamDestination

from .. import names
from ..config import OperatorConfig
from ..platform_brokers import SecretMount
from .common import CONTAINER_SECURITY, POD_SECURITY, Body, metadata, owner_reference, with_hash


def _meta(mapping: EventSourceMapping, uid: str) -> Body:
    return metadata(
        names.poller(mapping.metadata.name),
        mapping.metadata.namespace,
        names.poller_labels(mapping.metadata.name, mapping.spec.function_name),
        owner_reference("EventSourceMapping", mapping.metadata.name, uid),
    )


def mapping_document(mapping: EventSourceMapping) -> str:
    """The mapping as the poller reads it from KFAAS_MAPPING: the manifest, defaults filled in."""
    return json.dumps(
        {
            "apiVersion": mapping.api_version,
            "kind": mapping.kind,
            "metadata": {"name": mapping.metadata.name, "namespace": mapping.metadata.namespace},
            "spec": mapping.spec.model_dump(by_alias=True, exclude_none=True),
        },
        sort_keys=True,
        separators=(",", ":"),
    )


def source_of(mapping: EventSourceMapping) -> str:
    """``kafka:<topic>`` or ``redis:<stream>``, for the printer column."""
    spec = mapping.spec
    if spec.kafka is not None:
        return f"kafka:{spec.kafka.topic}"
    assert spec.redis is not None
    return f"redis:{spec.redis.stream}"


SECRETS_DIR = "/var/run/kfaas/secrets"
# Readable by the pod's group (fsGroup) only.
_SECRET_MODE = 0o440


def _secret_names(tls: KafkaTls | None, auth: KafkaAuth | None) -> list[str]:
    names = [tls.ca_secret_ref.name] if tls is not None and tls.ca_secret_ref else []
    return names + ([auth.secret_ref.name] if auth is not None else [])


def referenced_secrets(mapping: EventSourceMapping) -> list[str]:
    """The Secrets the mapping's Kafka source and on-failure destination name, sorted."""
    spec = mapping.spec
    names = _secret_names(spec.kafka.tls, spec.kafka.auth) if spec.kafka is not None else []
    target = spec.destination_config.on_failure if spec.destination_config else None
    if target is not None and target.kafka is not None:
        names += _secret_names(target.kafka.tls, target.kafka.auth)
    return sorted(set(names))


def _on_failure(mapping: EventSourceMapping) -> StreamDestination | None:
    config = mapping.spec.destination_config
    return config.on_failure if config else None


def uses_platform_kafka(mapping: EventSourceMapping) -> bool:
    """A Redis mapping whose on-failure destination is a Kafka topic naming no cluster: it goes
    to the platform's (a Kafka source's destination uses the source's cluster instead)."""
    target = _on_failure(mapping)
    kafka = target.kafka if target else None
    return mapping.spec.redis is not None and kafka is not None and kafka.bootstrap_servers is None


def uses_platform_redis(mapping: EventSourceMapping) -> bool:
    """A Kafka mapping whose on-failure destination is a Redis stream naming no server."""
    target = _on_failure(mapping)
    redis = target.redis if target else None
    return mapping.spec.kafka is not None and redis is not None and redis.url is None


def _platform_env(mapping: EventSourceMapping, config: OperatorConfig) -> list[Body]:
    """The platform's Kafka or Redis settings, only for a mapping that writes there (ADR 032):
    other pollers need not, and a namespace without the platform's Secrets still runs them."""
    if uses_platform_kafka(mapping):
        return config.platform_kafka.env()
    if uses_platform_redis(mapping):
        return config.platform_redis.env()
    return []


def _platform_mounts(mapping: EventSourceMapping, config: OperatorConfig) -> list[SecretMount]:
    return list(config.platform_kafka.mounts) if uses_platform_kafka(mapping) else []


def make_poller_deployment(mapping: EventSourceMapping, uid: str, config: OperatorConfig) -> Body:
    """``parallelism`` pollers while enabled, none while disabled (offsets stay committed)."""
    spec = mapping.spec
    env: list[Body] = [
        {"name": "KFAAS_MAPPING", "value": mapping_document(mapping)},
        {"name": "KFAAS_GATEWAY_URL", "value": config.gateway_url},
        {"name": "KFAAS_REGION", "value": config.region},
        {
            "name": "KFAAS_STREAM_RETRY_BASE_SECONDS",
            "value": f"{config.stream_retry_base_seconds:g}",
        },
        {"name": "KFAAS_POLLER_METRICS_HOST", "value": "0.0.0.0"},
        {"name": "KFAAS_POLLER_METRICS_PORT", "value": str(names.POLLER_METRICS_PORT)},
        {"name": "KFAAS_POLLER_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
    ]
    secrets = referenced_secrets(mapping)
    if secrets:
        env.append({"name": "KFAAS_POLLER_SECRETS_DIR", "value": SECRETS_DIR})
    env += _platform_env(mapping, config)
    platform = _platform_mounts(mapping, config)
    container: Body = {
        "name": "poller",
        "image": config.image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["kfaas", "poller"],
        "env": env,
        "ports": [
            {"name": "metrics", "containerPort": names.POLLER_METRICS_PORT, "protocol": "TCP"}
        ],
        "resources": {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "256Mi"}},
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "tmp", "mountPath": "/tmp"},
            *(
                {"name": f"secret-{index}", "mountPath": f"{SECRETS_DIR}/{name}", "readOnly": True}
                for index, name in enumerate(secrets)
            ),
            *(
                {"name": f"platform-kafka-{index}", "mountPath": mount.folder, "readOnly": True}
                for index, mount in enumerate(platform)
            ),
        ],
    }
    volumes: list[Body] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    volumes += [
        {
            "name": f"secret-{index}",
            # Optional: a Secret created later is mounted when it appears; until then the
            # poller reports the mapping not Polling, naming the Secret.
            "secret": {"secretName": name, "optional": True, "defaultMode": _SECRET_MODE},
        }
        for index, name in enumerate(secrets)
    ]
    # Not optional: without the platform's Secret in this namespace the pod waits, and the
    # kubelet's event names the Secret (`kubectl describe pod`), rather than the poller exiting.
    volumes += [
        {"name": f"platform-kafka-{index}", "secret": _platform_secret(mount)}
        for index, mount in enumerate(platform)
    ]
    labels = names.poller_labels(mapping.metadata.name, spec.function_name)
    return with_hash(
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(mapping, uid),
            "spec": {
                "replicas": spec.parallelism if spec.enabled else 0,
                "selector": {"matchLabels": names.poller_selector(mapping.metadata.name)},
                "revisionHistoryLimit": 3,
                # One poller per partition assignment: let the old one go before the new starts.
                "strategy": {"type": "Recreate"},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "serviceAccountName": names.poller(mapping.metadata.name),
                        "enableServiceLinks": False,
                        "securityContext": POD_SECURITY,
                        "containers": [container],
                        "volumes": volumes,
                    },
                },
            },
        }
    )


def _platform_secret(mount: SecretMount) -> Body:
    secret: Body = {"secretName": mount.secret, "defaultMode": _SECRET_MODE}
    if mount.keys:
        secret["items"] = [{"key": key, "path": key} for key in mount.keys]
    return secret


def make_poller_service_account(mapping: EventSourceMapping, uid: str) -> Body:
    return with_hash(
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(mapping, uid)}
    )


def make_poller_role(mapping: EventSourceMapping, uid: str) -> Body:
    """Read this mapping, write its status (lag, last batch), and invoke its function.

    ``invoke`` on the one function is what a gateway with ``--auth sigv4`` asks RBAC about when
    the poller calls it with its ServiceAccount token (ADR 009).
    """
    return with_hash(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": _meta(mapping, uid),
            "rules": [
                {
                    "apiGroups": [API_GROUP],
                    "resources": ["eventsourcemappings"],
                    "resourceNames": [mapping.metadata.name],
                    "verbs": ["get"],
                },
                {
                    "apiGroups": [API_GROUP],
                    "resources": ["eventsourcemappings/status"],
                    "resourceNames": [mapping.metadata.name],
                    "verbs": ["get", "patch"],
                },
                {
                    "apiGroups": [API_GROUP],
                    "resources": ["functions"],
                    "resourceNames": [mapping.spec.function_name],
                    "verbs": ["invoke"],
                },
            ],
        }
    )


def make_poller_role_binding(mapping: EventSourceMapping, uid: str) -> Body:
    name = names.poller(mapping.metadata.name)
    return with_hash(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": _meta(mapping, uid),
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
            "subjects": [
                {"kind": "ServiceAccount", "name": name, "namespace": mapping.metadata.namespace}
            ],
        }
    )
