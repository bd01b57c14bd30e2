"""`kfaas gateway --backend kubernetes`, run as the chart's gateway ServiceAccount, writes what the
management API is asked for into the API server: boto3's calls become Function objects that
``kubectl`` shows, written by the field manager ``kfaas-gateway`` (tags by their own), with
Lambda's answers to a duplicate and a stale RevisionId. This is the wiring (the gateway's object
store) and the chart's grant together; the store's own rules are test_conformance's."""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from chart import helm_build
from chart.platform import Platform, gateway_process, install
from services.cluster import Cluster

pytestmark = pytest.mark.kwok

KFAAS = str(Path(sys.executable).with_name("kfaas"))
ROLE = "arn:aws:iam::123456789012:role/ignored"


@pytest.fixture(scope="module")
def gateway(
    kwok_service: Cluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Platform, str]]:
    platform = install(helm_build.build(), kwok_service, tmp_path_factory.mktemp("writes"))
    try:
        with gateway_process(platform, KFAAS_AUTH="none") as (url, _):
            yield platform, url
    finally:
        kwok_service.kubectl("delete", "namespace", platform.namespace, "--wait=false")


def live(platform: Platform, namespace: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(
        platform.kubectl(
            "get", "function", name, "-n", namespace, "-o", "json", "--show-managed-fields"
        )
    )
    return found


def test_the_cluster_gateway_writes_functions_kubectl_shows(gateway: tuple[Platform, str]) -> None:
    platform, url = gateway
    namespace = f"team-{uuid.uuid4().hex[:6]}"
    platform.kubectl("create", "namespace", namespace)
    client = boto3.client(
        "lambda", endpoint_url=url, region_name="eu-west-1",
        aws_access_key_id="x", aws_secret_access_key="x",
        config=Config(retries={"max_attempts": 0}),
    )  # fmt: skip
    name = f"{namespace}/hello"
    try:
        created = client.create_function(
            FunctionName=name, Role=ROLE, PackageType="Image",
            Code={"ImageUri": "registry.example/hello:1"}, MemorySize=256,
            Handler="app.handler", Runtime="python3.12",
        )  # fmt: skip
        body = live(platform, namespace, "hello")
        assert body["spec"]["memoryMB"] == 256
        managers = {entry["manager"] for entry in body["metadata"]["managedFields"]}
        assert "kfaas-gateway" in managers
        with pytest.raises(ClientError) as duplicate:
            client.create_function(
                FunctionName=name, Role=ROLE, PackageType="Image",
                Code={"ImageUri": "registry.example/hello:1"},
                Handler="app.handler", Runtime="python3.12",
            )  # fmt: skip
        assert duplicate.value.response["Error"]["Code"] == "ResourceConflictException"

        updated = client.update_function_configuration(
            FunctionName=name, MemorySize=512, RevisionId=created["RevisionId"]
        )
        assert live(platform, namespace, "hello")["spec"]["memoryMB"] == 512
        with pytest.raises(ClientError) as stale:
            client.update_function_configuration(
                FunctionName=name, MemorySize=1024, RevisionId=created["RevisionId"]
            )
        assert stale.value.response["Error"]["Code"] == "PreconditionFailedException"

        client.tag_resource(Resource=updated["FunctionArn"], Tags={"team": "a"})
        tagged = live(platform, namespace, "hello")
        managers = {entry["manager"] for entry in tagged["metadata"]["managedFields"]}
        assert "kfaas-gateway-tags" in managers
        assert tagged["metadata"]["generation"] == 2  # tags are not a spec change

        client.delete_function(FunctionName=name)
        gone = platform.kubectl("get", "function", "hello", "-n", namespace, check=False)
        assert "NotFound" in gone
    finally:
        platform.kubectl("delete", "namespace", namespace, "--wait=false")
