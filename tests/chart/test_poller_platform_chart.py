"""Poller pods reach the platform's Kafka and Redis as the gateway does (ADR 032).

The chart gives the operator the gateway's `KFAAS_KAFKA_*` variables and Secret mounts, plus the
Secrets' names; the operator builds, from exactly what the chart rendered, the poller Deployment
of a mapping whose dead letters go to the platform's cluster. That Deployment must carry the
gateway's variables and mount the same Secrets at the same paths, a password never in its env.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from chart.test_gateway_exposure import _env, _gateway_container, _objects, _one
from chart.test_platform_kafka_chart import MTLS, SCRAM
from kfaas.manifests import EventSourceMapping, parse_manifest
from kfaas.operator.config import OperatorConfig
from kfaas.operator.platform_brokers import PlatformKafka, PlatformRedis
from kfaas.operator.resources.mapping import make_poller_deployment


def _pod(objects: list[dict[str, Any]], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = _one(objects, "Deployment", name)["spec"]["template"]["spec"]
    return spec


def _operator_environ(objects: list[dict[str, Any]]) -> dict[str, str]:
    """The operator's environment as the kubelet resolves it (a Secret's key: a stand-in)."""
    (container,) = _pod(objects, "kfaas-operator")["containers"]
    return {
        name: value if isinstance(value, str) else "kfaas"
        for name, value in _env(container).items()
    }


def _mapping(destination: dict[str, Any], source: dict[str, Any]) -> EventSourceMapping:
    manifest = parse_manifest(
        {
            "apiVersion": "kfaas.dev/v1alpha1",
            "kind": "EventSourceMapping",
            "metadata": {"name": "orders", "namespace": "team-a"},
            "spec": {
                "functionName": "f",
                **source,
                "destinationConfig": {"onFailure": destination},
            },
        }
    )
    assert isinstance(manifest, EventSourceMapping)
    return manifest


REDIS_TO_KAFKA = _mapping(
    {"kafka": {"topic": "orders-dlq"}}, {"redis": {"url": "redis://r:6379/0", "stream": "s"}}
)
KAFKA_TO_REDIS = _mapping(
    {"redis": {"stream": "orders-dlq"}}, {"kafka": {"bootstrapServers": "k:9092", "topic": "t"}}
)


def _poller(environ: dict[str, str], mapping: EventSourceMapping) -> dict[str, Any]:
    config = OperatorConfig(
        platform_kafka=PlatformKafka.from_env(environ),
        platform_redis=PlatformRedis.from_env(environ),
    )
    return make_poller_deployment(mapping, "uid", config)


@pytest.mark.parametrize("values", [SCRAM, MTLS], ids=["scram", "mtls"])
def test_poller_pods_get_the_gateways_kafka_settings_and_mounts(
    helm: Path, values: tuple[str, ...]
) -> None:
    objects = _objects(helm, *values)
    gateway = _gateway_container(objects)
    poller = _poller(_operator_environ(objects), REDIS_TO_KAFKA)
    (container,) = poller["spec"]["template"]["spec"]["containers"]

    def kafka_env(found: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in _env(found).items() if k.startswith("KFAAS_KAFKA")}

    assert kafka_env(container) == kafka_env(gateway)
    assert "KFAAS_KAFKA_PASSWORD" not in _env(container)
    # The same Secrets at the same folders, with the same keys and modes.
    gateway_volumes = {
        v["name"]: v["secret"] for v in _pod(objects, "kfaas-gateway")["volumes"] if "secret" in v
    }
    poller_volumes = {
        v["name"]: v["secret"]
        for v in poller["spec"]["template"]["spec"]["volumes"]
        if "secret" in v
    }

    def secrets_at(mounts: list[dict[str, Any]], volumes: dict[str, Any]) -> dict[str, Any]:
        return {m["mountPath"]: volumes[m["name"]] for m in mounts if m["name"] in volumes}

    mounted = secrets_at(container["volumeMounts"], poller_volumes)
    assert mounted and mounted == secrets_at(gateway["volumeMounts"], gateway_volumes)


@pytest.mark.parametrize("values", [SCRAM, MTLS], ids=["scram", "mtls"])
def test_the_operator_starts_with_what_the_chart_gives_it(
    helm: Path, tmp_path: Path, values: tuple[str, ...]
) -> None:
    """Its settings are checked at start like the gateway's: the files it is given read cleanly."""
    objects = _objects(helm, *values)
    (container,) = _pod(objects, "kfaas-operator")["containers"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/kfaas/kafka/auth"} <= mounts
    for name in ("ca/ca.crt", "auth/password", "auth/tls.crt", "auth/tls.key"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"-----BEGIN X-----\nMIIB\n-----END X-----\n")
    environ = {
        name: value.replace("/etc/kfaas/kafka", str(tmp_path))
        for name, value in _operator_environ(objects).items()
    }
    config = OperatorConfig.from_env(environ)
    assert config.platform_kafka.bootstrap_servers == (
        "kafka.kafka:9093" if values == SCRAM else None
    )
    assert config.platform_kafka.mounts


def test_by_default_the_operator_gets_no_kafka_settings_and_pollers_none(helm: Path) -> None:
    objects = _objects(helm)
    environ = _operator_environ(objects)
    assert not [name for name in environ if name.startswith("KFAAS_KAFKA")]
    assert [v["name"] for v in _pod(objects, "kfaas-operator")["volumes"]] == ["tmp"]
    poller = _poller(environ, REDIS_TO_KAFKA)
    assert not [
        n for n in _env(poller["spec"]["template"]["spec"]["containers"][0]) if "KAFKA" in n
    ]


def test_poller_pods_read_the_platform_redis_url_from_the_same_secret(helm: Path) -> None:
    objects = _objects(helm, "redis.urlSecret.name=kfaas-redis", "redis.urlSecret.key=connection")
    gateway = _env(_gateway_container(objects))
    poller = _poller(_operator_environ(objects), KAFKA_TO_REDIS)
    found = _env(poller["spec"]["template"]["spec"]["containers"][0])
    assert (
        found["KFAAS_REDIS_URL"]
        == gateway["KFAAS_REDIS_URL"]
        == {"secretKeyRef": {"name": "kfaas-redis", "key": "connection"}}
    )
    plain = _objects(helm, "redis.url=redis://redis.kfaas-system:6379/0")
    found = _env(_poller(_operator_environ(plain), KAFKA_TO_REDIS)["spec"]["template"]["spec"][
        "containers"][0])  # fmt: skip
    assert found["KFAAS_REDIS_URL"] == "redis://redis.kfaas-system:6379/0"
