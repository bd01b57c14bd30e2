"""A code.zip Function on a platform that runs the code store (ADR 025): its pods fetch the zip.

The builders are checked as data: an init container of the function's runtime image that runs
`kfaas fetch-code` hardened like the runtime, with the capability from the token Secret in its
environment only; the zip unpacked into an emptyDir that the runtime mounts read-only at
/var/task; the digest in the pod template; the capability in the Secret and in its fingerprint;
the store's pods in the egress policy. Without the store the refusal stays (test_code_zip.py).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
from typing import Any

import pytest

from kfaas import code_capabilities, runtimetoken
from kfaas.code_digests import CodeDigest
from kfaas.manifests import Function, parse_manifest
from kfaas.operator import names
from kfaas.operator.config import OperatorConfig
from kfaas.operator.reconcile import FunctionPass, store_code
from kfaas.operator.resources import function as fn
from kfaas.operator.resources.common import CONTAINER_SECURITY
from kfaas.operator.resources.egress import make_egress_rules

DIGEST = "ab" * 32
OTHER = "cd" * 32
STORE_KEY = "store-key"
CONFIG = OperatorConfig(
    image="registry.example/kfaas:1.0",
    platform_namespace="platform",
    runtime_token_key="runtime-key",
    code_store_url="http://kfaas-code-store.platform.svc:8090",
    code_store_key=STORE_KEY,
)


def _function(digest: str = DIGEST) -> Function:
    manifest = parse_manifest(
        {
            "apiVersion": "kfaas.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "thumb", "namespace": "media"},
            "spec": {
                "runtime": "python3.11",
                "handler": "app.handler",
                "code": {"zip": {"sha256": digest, "size": 120}},
            },
        },
        "fn.yaml",
    )
    assert isinstance(manifest, Function)
    return manifest


def _pod(config: OperatorConfig = CONFIG, digest: str = DIGEST) -> dict[str, Any]:
    deployment = fn.make_deployment(_function(digest), "u-1", config)
    pod: dict[str, Any] = deployment["spec"]["template"]
    return pod


def test_an_init_container_fetches_the_zip_into_the_code_volume() -> None:
    spec = _pod()["spec"]
    (fetch,) = spec["initContainers"]
    (runtime,) = spec["containers"]
    assert fetch["image"] == runtime["image"] == "registry.example/kfaas:1.0"
    assert fetch["command"] == ["kfaas", "fetch-code"]
    assert fetch["securityContext"] == CONTAINER_SECURITY == runtime["securityContext"]
    env = {item["name"]: item for item in fetch["env"]}
    assert env["KFAAS_CODE_STORE_URL"]["value"] == CONFIG.code_store_url
    assert env["KFAAS_CODE_SHA256"]["value"] == DIGEST
    assert env["KFAAS_CODE_CAPABILITY"]["valueFrom"]["secretKeyRef"] == {
        "name": names.function_token("thumb"),
        "key": code_capabilities.SECRET_KEY,
    }
    assert {"name": "code", "mountPath": "/var/task"} in fetch["volumeMounts"]
    assert {"name": "code", "emptyDir": {"sizeLimit": "300Mi"}} in spec["volumes"]


def test_the_runtime_reads_the_code_read_only_and_never_sees_the_capability() -> None:
    (runtime,) = _pod()["spec"]["containers"]
    assert {"name": "code", "mountPath": "/var/task", "readOnly": True} in runtime["volumeMounts"]
    names_in_env = {item["name"] for item in runtime["env"]}
    assert "KFAAS_CODE_CAPABILITY" not in names_in_env
    assert not any(
        (item.get("valueFrom") or {}).get("secretKeyRef", {}).get("key")
        == code_capabilities.SECRET_KEY
        for item in runtime["env"]
    )


def test_a_new_zip_changes_the_pod_template() -> None:
    first, second = _pod(digest=DIGEST), _pod(digest=OTHER)
    assert first["metadata"]["annotations"][names.CODE_SHA256_ANNOTATION] == DIGEST
    assert second["metadata"]["annotations"][names.CODE_SHA256_ANNOTATION] == OTHER
    assert first != second


def test_the_token_secret_holds_the_read_capability_and_its_fingerprint_covers_it() -> None:
    secret = fn.make_token_secret(_function(), "u-1", CONFIG)
    assert secret is not None
    data = {key: base64.b64decode(value).decode() for key, value in secret["data"].items()}
    expected = code_capabilities.read_capability(STORE_KEY, CodeDigest(DIGEST))
    assert data[code_capabilities.SECRET_KEY] == expected
    assert runtimetoken.SECRET_KEY in data
    # A rotated store key changes the capability, hence the fingerprint, hence the pods.
    rotated = dataclasses.replace(CONFIG, code_store_key="another-key")
    annotation = names.RUNTIME_TOKEN_ANNOTATION
    before = _pod()["metadata"]["annotations"][annotation]
    after = _pod(rotated)["metadata"]["annotations"][annotation]
    assert before != after


def test_code_that_is_not_a_zip_keeps_its_secret_and_fingerprint() -> None:
    inline = parse_manifest(
        {
            "apiVersion": "kfaas.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "thumb", "namespace": "media"},
            "spec": {
                "runtime": "python3.11",
                "handler": "app.handler",
                "code": {"inline": {"app.py": "def handler(e, c): return 1\n"}},
            },
        },
        "fn.yaml",
    )
    assert isinstance(inline, Function)
    secret = fn.make_token_secret(inline, "u-1", CONFIG)
    assert secret is not None
    assert list(secret["data"]) == [runtimetoken.SECRET_KEY]
    pod = fn.make_deployment(inline, "u-1", CONFIG)["spec"]["template"]
    token = fn.runtime_token(inline, "runtime-key")
    annotation = pod["metadata"]["annotations"][names.RUNTIME_TOKEN_ANNOTATION]
    assert annotation == runtimetoken.fingerprint(token)  # unchanged: no roll on upgrade
    assert "initContainers" not in pod["spec"]


def test_function_pods_may_reach_the_store_pods_on_its_port_only() -> None:
    rules = make_egress_rules(CONFIG)
    store_rules = [
        rule
        for rule in rules
        if any(
            (peer.get("podSelector") or {})
            .get("matchLabels", {})
            .get("app.kubernetes.io/component")
            == "code-store"
            for peer in rule.get("to", [])
        )
    ]
    assert store_rules == [
        {
            "to": [
                {
                    "namespaceSelector": {
                        "matchLabels": {"kubernetes.io/metadata.name": "platform"}
                    },
                    "podSelector": {
                        "matchLabels": {
                            "app.kubernetes.io/name": "kfaas",
                            "app.kubernetes.io/component": "code-store",
                        }
                    },
                }
            ],
            "ports": [{"protocol": "TCP", "port": 8090}],
        }
    ]
    without = OperatorConfig(platform_namespace="platform")
    assert len(make_egress_rules(without)) == len(rules) - 1


def test_with_the_store_the_code_is_ready_as_a_stored_zip() -> None:
    body = {"metadata": {"name": "thumb", "namespace": "media", "uid": "u-1"}}
    state = FunctionPass(body, CONFIG)
    state.parsed = _function()
    outcome = asyncio.run(store_code(None, state))  # type: ignore[arg-type]
    assert (outcome.type, outcome.status, outcome.reason) == ("CodeReady", "True", "StoredZip")


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, None),
        (
            {"KFAAS_CODE_STORE_URL": "http://store:8090/", "KFAAS_CODE_STORE_KEY": "k"},
            "http://store:8090",
        ),
    ],
)
def test_the_operator_reads_the_store_from_its_variables(
    environ: dict[str, str], expected: str | None
) -> None:
    config = OperatorConfig.from_env(environ)
    assert config.code_store_url == expected
    assert config.code_store is (expected is not None)
    assert "'k'" not in repr(config)


def test_a_store_url_without_its_key_is_refused() -> None:
    with pytest.raises(ValueError, match="KFAAS_CODE_STORE_URL needs KFAAS_CODE_STORE_KEY"):
        OperatorConfig.from_env({"KFAAS_CODE_STORE_URL": "http://store:8090"})
