"""Invoke API auth on the real control plane: credential Secrets, TokenReview and RBAC.

The chart is installed and `kfaas gateway --backend kubernetes` runs as the chart's gateway
ServiceAccount with ``KFAAS_AUTH=sigv4`` (so the chart's RBAC for Secrets and reviews is what is
tested), with a one-second review cache. Pods never run on kwok, so invocations are ``DryRun``:
Lambda's way to ask "may I invoke this?", answered after authentication and authorization. The
kubectl commands are those docs/security.md gives, run as written.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from chart import helm_build
from chart.platform import Platform, gateway_process, install
from services.cluster import Cluster
from waiting import eventually

from kfaas.lambda_shapes import last_modified, object_facts, revision_id
from kfaas.manifests import EventSourceMapping, parse_manifest
from kfaas.operator.resources import mapping as esm

AWS = str(Path(sys.executable).with_name("aws"))
KFAAS = str(Path(sys.executable).with_name("kfaas"))


class Gateway:
    def __init__(self, url: str, platform: Platform, log: Path) -> None:
        self.url = url
        self.platform = platform
        self.log = log

    def client(self, key: str, secret: str) -> Any:
        return boto3.client(
            "lambda", endpoint_url=self.url, region_name="eu-west-1",
            aws_access_key_id=key, aws_secret_access_key=secret,
            config=Config(retries={"max_attempts": 0}),
        )  # fmt: skip


@pytest.fixture(scope="module")
def gateway(kwok_service: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    platform = install(helm_build.build(), kwok_service, tmp_path_factory.mktemp("auth"))
    try:
        environment = {"KFAAS_AUTH": "sigv4", "KFAAS_AUTH_CACHE_SECONDS": "1"}
        with gateway_process(platform, **environment) as (url, log):
            yield Gateway(url, platform, log)
    finally:
        kwok_service.kubectl("delete", "namespace", platform.namespace, "--wait=false")


@pytest.fixture
def namespace(gateway: Gateway) -> Iterator[str]:
    name = f"team-{uuid.uuid4().hex[:6]}"
    gateway.platform.kubectl("create", "namespace", name)
    gateway.platform.apply(function_doc("api", name))
    yield name
    gateway.platform.kubectl("delete", "namespace", name, "--wait=false")


def function_doc(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "runtime": "python3.11", "handler": "app.handler",
            "code": {"inline": {"app.py": "def handler(event, context):\n    return 1\n"}},
            "environment": {"DB_PASSWORD": f"{namespace}-password"},
        },
    }  # fmt: skip


def outcome(call: Callable[[], Any]) -> str:
    """``ok`` or the error code boto3 raised."""
    try:
        call()
    except ClientError as error:
        return str(error.response["Error"]["Code"])
    return "ok"


def add_credential(platform: Platform, name: str, key: str, secret: str, user: str) -> None:
    """docs/security.md, "Access keys", as written."""
    ns = platform.namespace
    platform.kubectl(
        "-n", ns, "create", "secret", "generic", name,
        f"--from-literal=accessKeyId={key}", f"--from-literal=secretAccessKey={secret}",
        f"--from-literal=user={user}", "--from-literal=groups=developers,team-a",
    )  # fmt: skip
    platform.kubectl("-n", ns, "label", "secret", name, "kfaas.dev/credentials=true")


def test_a_rolebinding_grants_invoke_and_its_removal_takes_it_back(
    gateway: Gateway, namespace: str
) -> None:
    platform = gateway.platform
    user = f"alice-{namespace}"
    key, secret = f"AKID{uuid.uuid4().hex[:12].upper()}", uuid.uuid4().hex
    alice = gateway.client(key, secret)

    def dry_run(function: str = f"{namespace}/api") -> str:
        return outcome(lambda: alice.invoke(FunctionName=function, InvocationType="DryRun"))

    assert dry_run() == "UnrecognizedClientException"
    add_credential(platform, f"{user}-key", key, secret, user)
    # A new Secret counts without a restart; without a binding RBAC refuses.
    assert eventually(
        lambda: dry_run() != "UnrecognizedClientException", within=30, what="the new key"
    )
    assert dry_run() == "AccessDeniedException"
    platform.kubectl(
        "-n", namespace, "create", "rolebinding", "alice-invokes",
        "--clusterrole=kfaas-invoker", f"--user={user}",
    )  # fmt: skip
    eventually(lambda: dry_run() == "ok", within=30, what="invoke granted by the RoleBinding")
    answer = alice.invoke(FunctionName=f"{namespace}/api", InvocationType="DryRun")
    assert answer["StatusCode"] == 204
    assert outcome(lambda: alice.get_function(FunctionName=f"{namespace}/api")) == (
        "AccessDeniedException"  # invoker may invoke, not read
    )
    assert outcome(lambda: gateway.client(key, "wrong").invoke(
        FunctionName=f"{namespace}/api", InvocationType="DryRun"
    )) == "InvalidSignatureException"  # fmt: skip
    platform.kubectl("-n", namespace, "delete", "rolebinding", "alice-invokes")
    eventually(lambda: dry_run() == "AccessDeniedException", within=30, what="invoke taken back")
    platform.kubectl("-n", platform.namespace, "delete", "secret", f"{user}-key")
    eventually(
        lambda: dry_run() == "UnrecognizedClientException", within=30, what="the deleted key"
    )


def test_viewers_list_their_namespaces_and_read_environments(
    gateway: Gateway, namespace: str
) -> None:
    platform = gateway.platform
    other = f"other-{uuid.uuid4().hex[:6]}"
    platform.kubectl("create", "namespace", other)
    platform.apply(function_doc("api", other))
    user = f"viewer-{namespace}"
    key, secret = f"AKID{uuid.uuid4().hex[:12].upper()}", uuid.uuid4().hex
    add_credential(platform, f"{user}-key", key, secret, user)
    platform.kubectl(
        "-n", namespace, "create", "rolebinding", "viewer", "--clusterrole=kfaas-viewer",
        "--group=developers",
    )  # fmt: skip
    viewer = gateway.client(key, secret)

    def listed() -> dict[str, Any]:
        try:
            functions = viewer.list_functions()["Functions"]
        except ClientError:
            return {}
        return {_key(f["FunctionArn"]): f.get("Environment") for f in functions}

    seen = eventually(
        lambda: listed().get(f"{namespace}/api") and listed(), within=30, what="the listing"
    )
    assert f"{other}/api" not in seen
    assert seen[f"{namespace}/api"] == {"Variables": {"DB_PASSWORD": f"{namespace}-password"}}
    assert outcome(lambda: viewer.get_function_configuration(FunctionName=f"{other}/api")) == (
        "AccessDeniedException"
    )
    # The read path's facts are the API object's (ADR 024), not the request's time.
    body = json.loads(platform.kubectl("-n", namespace, "get", "function", "api", "-o", "json"))
    configuration = viewer.get_function_configuration(FunctionName=f"{namespace}/api")
    assert configuration["RevisionId"] == revision_id(
        body["metadata"]["uid"], body["metadata"]["generation"]
    )
    assert configuration["LastModified"] == last_modified(object_facts(body))
    platform.kubectl("delete", "namespace", other, "--wait=false")


def _bearer_dry_run(gateway: Gateway, function: str, token: str) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{gateway.url}/2015-03-31/functions/{function.replace('/', '%2F')}/invocations",
        data=b"{}", method="POST",
        headers={"X-Amz-Invocation-Type": "DryRun", "Authorization": f"Bearer {token}"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, ""
    except urllib.error.HTTPError as error:
        with error:
            return error.code, str(error.headers.get("x-amzn-ErrorType"))


def test_a_service_account_token_authenticates_pods(gateway: Gateway, namespace: str) -> None:
    platform = gateway.platform
    platform.kubectl("-n", namespace, "create", "serviceaccount", "caller")
    platform.kubectl(
        "-n", namespace, "create", "rolebinding", "caller-invokes",
        "--clusterrole=kfaas-invoker", f"--serviceaccount={namespace}:caller",
    )  # fmt: skip
    # The TokenRequest API, as a pod's projected token is made.
    token = platform.kubectl("-n", namespace, "create", "token", "caller").strip()
    assert eventually(
        lambda: _bearer_dry_run(gateway, f"{namespace}/api", token) == (204, ""),
        within=30,
        what="bearer token",
    )
    assert _bearer_dry_run(gateway, f"{namespace}/api", token[:-4] + "AAAA") == (
        403, "UnrecognizedClientException",
    )  # fmt: skip
    assert _bearer_dry_run(gateway, f"{namespace}/api", "x" * 5000)[1] == (
        "UnrecognizedClientException"
    )


def test_the_poller_role_the_operator_builds_lets_pollers_invoke_their_function_only(
    gateway: Gateway, namespace: str
) -> None:
    platform = gateway.platform
    platform.apply(function_doc("other", namespace))
    manifest = parse_manifest({
        "apiVersion": "kfaas.dev/v1alpha1", "kind": "EventSourceMapping",
        "metadata": {"name": "orders", "namespace": namespace},
        "spec": {"functionName": "api", "redis": {"url": "redis://r:6379/0", "stream": "s"}},
    })  # fmt: skip
    assert isinstance(manifest, EventSourceMapping)
    for build in (esm.make_poller_service_account, esm.make_poller_role,
                  esm.make_poller_role_binding):  # fmt: skip
        obj = build(manifest, "0")
        del obj["metadata"]["ownerReferences"]  # no real mapping owns them here
        platform.apply(obj)
    account = esm.make_poller_service_account(manifest, "0")["metadata"]["name"]
    token = platform.kubectl("-n", namespace, "create", "token", account).strip()
    assert eventually(
        lambda: _bearer_dry_run(gateway, f"{namespace}/api", token) == (204, ""),
        within=30,
        what="poller invokes",
    )
    assert _bearer_dry_run(gateway, f"{namespace}/other", token) == (403, "AccessDeniedException")


def test_the_aws_cli_is_judged_by_rbac_too(gateway: Gateway, namespace: str) -> None:
    platform = gateway.platform
    user = f"cli-{namespace}"
    key, secret = f"AKID{uuid.uuid4().hex[:12].upper()}", uuid.uuid4().hex
    add_credential(platform, f"{user}-key", key, secret, user)
    env = {
        **os.environ, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret,
        "AWS_DEFAULT_REGION": "us-west-2", "AWS_MAX_ATTEMPTS": "1",
    }  # fmt: skip

    def cli() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AWS, "lambda", "invoke", "--endpoint-url", gateway.url,
             "--function-name", f"{namespace}/api", "--invocation-type", "DryRun", os.devnull],
            env=env, capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip

    eventually(
        lambda: "AccessDeniedException" in cli().stderr, within=30, what="the key, refused by RBAC"
    )
    platform.kubectl(
        "-n", namespace, "create", "rolebinding", "cli-invokes", "--clusterrole=kfaas-invoker",
        f"--user={user}",
    )  # fmt: skip

    def allowed() -> subprocess.CompletedProcess[str] | None:
        done = cli()
        return done if done.returncode == 0 else None

    done = eventually(allowed, within=30, what="the CLI allowed")
    assert json.loads(done.stdout)["StatusCode"] == 204


def _key(arn: str) -> str:
    """`namespace/name` of a function ARN (the namespace is the ARN's account field)."""
    fields = arn.split(":")
    return f"{fields[4]}/{fields[6]}"
