"""HTTP trigger auth against the real control plane: CEL rules, and keys from Secrets/ConfigMaps.

The apiserver refuses a Function whose ``spec.http`` auth lacks its configuration (or names a
dev-only key file) with the field path, as `kfaas dev` does. The gateway's
``KubernetesKeySources`` reads the Secret or ConfigMap a Function names from the real apiserver,
honours ``key``, refuses what is missing, and sees a rotated key after its cache interval; the
trigger check runs on top of it exactly as the gateway runs it.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp.test_utils import make_mocked_request
from chart import helm_build
from chart.platform import render
from security.jwt_keys import AUDIENCE, ISSUER, Keys, es256, rs256
from services.cluster import Cluster
from waiting import eventually_async

from kfaas.gateway.kube_clients import KubernetesKeySources
from kfaas.gateway.trigger_auth import TriggerAuth
from kfaas.kube_clients import Credentials, KubeClient
from kfaas.manifests import Function, parse_manifest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def crd(kwok_service: Cluster) -> Cluster:
    kwok_service.install_crds(ROOT / "crds" / "functions.kfaas.dev.yaml")
    return kwok_service


@pytest.fixture
def namespace(kwok_service: Cluster) -> Iterator[str]:
    name = f"trigger-auth-{uuid.uuid4().hex[:6]}"
    kwok_service.kubectl("create", "namespace", name)
    yield name
    kwok_service.kubectl("delete", "namespace", name, "--wait=false")


def function_doc(namespace: str, **http: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"image": "example/web:1"},
            "http": {"enabled": True, **http},
        },
    }


JWT = {"issuer": ISSUER, "audiences": [AUDIENCE], "jwksUrl": "https://idp.example/jwks.json"}
INVALID = [
    ({"auth": "API_KEY"}, "auth API_KEY requires apiKey"),
    ({"auth": "JWT"}, "auth JWT requires jwt"),
    ({"auth": "NONE", "apiKey": {"secretRef": {"name": "k"}}},
     "apiKey is only used with auth API_KEY"),
    ({"auth": "API_KEY", "apiKey": {"file": "keys.txt"}}, "file is for local `kfaas dev` only"),
    ({"auth": "API_KEY", "apiKey": {}}, "exactly one of secretRef, file must be set"),
    ({"auth": "JWT", "jwt": {**JWT, "keys": {"configMapRef": {"name": "k"}}}},
     "exactly one of jwksUrl, keys must be set"),
    ({"auth": "JWT", "jwt": {**JWT, "jwksUrl": "http://idp.example/k"}}, "spec.http.jwt.jwksUrl"),
    ({"auth": "JWT", "jwt": {**JWT, "audiences": []}}, "spec.http.jwt.audiences"),
    ({"auth": "JWT", "jwt": {**JWT, "jwksUrl": "http://localhost:8080/jwks"}},
     "jwksUrl must be https:// in a cluster"),
    ({"auth": "JWT", "jwt": {**JWT, "scopes": ["a b"]}}, "spec.http.jwt.scopes[0]"),
    ({"auth": "DIGEST"}, "Unsupported value"),
]  # fmt: skip


@pytest.mark.parametrize(("http", "rule"), INVALID, ids=[str(i) for i in range(len(INVALID))])
def test_the_apiserver_refuses_incomplete_trigger_auth(
    crd: Cluster, http: dict[str, Any], rule: str
) -> None:
    done = crd.kubectl(
        "apply", "--dry-run=server", "-f", "-",
        input=yaml.safe_dump(function_doc("default", **http)), check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "spec.http" in done.stderr and rule in done.stderr, done.stderr


def test_the_apiserver_accepts_each_mode(crd: Cluster) -> None:
    modes: list[dict[str, Any]] = [
        {"auth": "API_KEY", "apiKey": {"secretRef": {"name": "keys", "key": "current"}}},
        {"auth": "JWT", "jwt": JWT},
        {"auth": "JWT", "jwt": {**JWT, "jwksUrl": None, "keys": {"secretRef": {"name": "k"}}}},
        {"auth": "AWS_IAM"},
    ]
    for http in modes:
        doc = function_doc("default", **http)
        if "jwt" in http:
            doc["spec"]["http"]["jwt"] = {k: v for k, v in http["jwt"].items() if v is not None}
        done = crd.kubectl("apply", "--dry-run=server", "-f", "-", input=yaml.safe_dump(doc))
        assert done.returncode == 0, done.stderr


def manifest(namespace: str, **http: Any) -> Function:
    function = parse_manifest(function_doc(namespace, **http))
    assert isinstance(function, Function)
    return function


async def status_of(auth: TriggerAuth, function: Function, headers: dict[str, str]) -> int:
    request = make_mocked_request("GET", f"/fn/{function.key}", headers=headers)
    verdict = await auth.check(function, request, "request-1")
    return 200 if verdict.refusal is None else verdict.refusal.status


async def test_api_keys_from_a_secret_with_rotation(kwok_service: Cluster, namespace: str) -> None:
    kwok_service.kubectl(
        "-n", namespace, "create", "secret", "generic", "api-keys",
        "--from-literal=current=key-one", "--from-literal=previous=key-zero\nkey-older\n",
    )  # fmt: skip
    every = manifest(namespace, auth="API_KEY", apiKey={"secretRef": {"name": "api-keys"}})
    current = manifest(
        namespace, auth="API_KEY", apiKey={"secretRef": {"name": "api-keys", "key": "current"}}
    )
    missing = manifest(namespace, auth="API_KEY", apiKey={"secretRef": {"name": "nope"}})
    credentials = Credentials.load(str(kwok_service.kubeconfig))
    async with KubeClient(credentials, field_manager="kfaas-test") as client:
        auth = TriggerAuth(KubernetesKeySources(client, ttl_seconds=0.5))
        try:
            for key in ("key-one", "key-zero", "key-older"):
                assert await status_of(auth, every, {"x-api-key": key}) == 200
            assert await status_of(auth, current, {"x-api-key": "key-one"}) == 200
            assert await status_of(auth, current, {"x-api-key": "key-zero"}) == 401
            assert await status_of(auth, every, {"x-api-key": "key-two"}) == 401
            assert await status_of(auth, missing, {"x-api-key": "key-one"}) == 401

            patch = {"data": {"current": "a2V5LXR3bw=="}}  # key-two
            kwok_service.kubectl(
                "-n", namespace, "patch", "secret", "api-keys", "-p", json.dumps(patch)
            )
            await asyncio.sleep(0.6)  # the cache interval under test, not a wait for a condition
            assert await status_of(auth, current, {"x-api-key": "key-two"}) == 200
            assert await status_of(auth, current, {"x-api-key": "key-one"}) == 401
        finally:
            await auth.close()


async def test_jwt_keys_from_a_config_map_and_a_secret(
    kwok_service: Cluster, namespace: str
) -> None:
    keys = Keys.generate()
    kwok_service.kubectl(
        "-n", namespace, "create", "configmap", "jwks",
        f"--from-literal=jwks.json={json.dumps(keys.jwks())}", "--from-literal=other=ignored",
    )  # fmt: skip
    kwok_service.kubectl(
        "-n",
        namespace,
        "create",
        "secret",
        "generic",
        "pem",
        f"--from-literal=ec.pem={keys.ec_pem()}",
    )
    config = {"issuer": ISSUER, "audiences": [AUDIENCE]}
    from_map = manifest(
        namespace, auth="JWT",
        jwt={**config, "keys": {"configMapRef": {"name": "jwks", "key": "jwks.json"}}},
    )  # fmt: skip
    from_secret = manifest(
        namespace, auth="JWT", jwt={**config, "keys": {"secretRef": {"name": "pem"}}}
    )
    credentials = Credentials.load(str(kwok_service.kubeconfig))
    async with KubeClient(credentials, field_manager="kfaas-test") as client:
        auth = TriggerAuth(KubernetesKeySources(client))
        try:
            bearer = {"authorization": f"Bearer {rs256(keys.rsa)}"}
            assert await status_of(auth, from_map, bearer) == 200
            assert await status_of(auth, from_secret, bearer) == 401
            ec_bearer = {"authorization": f"Bearer {es256(keys.ec, kid=None)}"}
            assert await status_of(auth, from_secret, ec_bearer) == 200
            forged = {"authorization": f"Bearer {rs256(keys.attacker)}"}
            assert await status_of(auth, from_map, forged) == 401
        finally:
            await auth.close()


def _token_credentials(cluster: Cluster, namespace: str, account: str) -> Credentials:
    token = cluster.kubectl("-n", namespace, "create", "token", account).stdout.strip()
    context = ssl.create_default_context(cafile=str(cluster.pki.ca_cert))
    return Credentials(cluster.server, context, lambda: f"Bearer {token}")


def _chart_trigger_keys_role() -> dict[str, Any]:
    rendered = render(helm_build.build(), "kfaas", include_crds=False)
    for doc in yaml.safe_load_all(rendered):
        if (
            doc
            and doc["kind"] == "ClusterRole"
            and doc["metadata"]["name"].endswith("trigger-keys")
        ):
            return dict(doc)
    raise AssertionError("the chart has no trigger-keys ClusterRole")


async def test_the_gateway_reads_keys_only_where_a_namespace_granted_it(
    kwok_service: Cluster, namespace: str
) -> None:
    role = _chart_trigger_keys_role()
    assert role["rules"] == [
        {"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["get"]}
    ]
    kwok_service.kubectl("apply", "-f", "-", input=yaml.safe_dump(role))
    kwok_service.kubectl("-n", namespace, "create", "serviceaccount", "gateway")
    kwok_service.kubectl(
        "-n", namespace, "create", "secret", "generic", "api-keys", "--from-literal=k=key-one"
    )
    function = manifest(namespace, auth="API_KEY", apiKey={"secretRef": {"name": "api-keys"}})
    credentials = _token_credentials(kwok_service, namespace, "gateway")
    async with KubeClient(credentials, field_manager="kfaas-test") as client:
        auth = TriggerAuth(KubernetesKeySources(client, ttl_seconds=0.2))
        try:
            assert await status_of(auth, function, {"x-api-key": "key-one"}) == 401
            # As docs/security.md says to grant it:
            kwok_service.kubectl(
                "create", "rolebinding", "kfaas-trigger-keys", "-n", namespace,
                f"--clusterrole={role['metadata']['name']}",
                f"--serviceaccount={namespace}:gateway",
            )  # fmt: skip

            async def granted() -> bool:
                return await status_of(auth, function, {"x-api-key": "key-one"}) == 200

            await eventually_async(granted, within=20, what="the grant taking effect", interval=0.3)
            listing = kwok_service.kubectl(
                "auth", "can-i", "list", "secrets", "-n", namespace,
                f"--as=system:serviceaccount:{namespace}:gateway", check=False,
            )  # fmt: skip
            assert listing.stdout.strip() == "no"
        finally:
            await auth.close()
