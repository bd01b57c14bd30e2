"""PublishVersion and aliases through boto3 on a real API server (kwok's): the gateway writes
FunctionVersion and FunctionAlias objects that ``kubectl get`` shows, the CRDs' CEL rules accept
them, publishing leaves $LATEST's RevisionId and LastModified alone (the counter is written by its
own field manager, which managedFields records apart), and a Function's deletion takes its
versions and aliases with it through the garbage collector."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devserver import make_lambda_client
from management_gateway import NoInstances, handler_zip, serve_in_thread
from services.cluster import Cluster
from waiting import eventually

from kfaas.code_folder import DirectoryCodeStore
from kfaas.config import Settings
from kfaas.gateway.app import create_app
from kfaas.gateway.kube_store import KubernetesObjectStore
from kfaas.gateway.registry import FunctionRegistry
from kfaas.kube_clients import Credentials, KubeClient
from kfaas.object_store import GATEWAY_MANAGER

CRDS = Path(__file__).resolve().parents[2] / "crds"


@pytest.fixture
def cluster_api(kwok_service: Cluster, tmp_path: Path) -> Iterator[tuple[Any, Cluster, str]]:
    """boto3 on a gateway whose objects are the kwok API server's, in a namespace of its own."""
    kwok_service.install_crds(CRDS)
    namespace = f"versions-{uuid.uuid4().hex[:6]}"
    kwok_service.kubectl("create", "namespace", namespace)
    client = KubeClient(
        Credentials.load(str(kwok_service.kubeconfig)), field_manager=GATEWAY_MANAGER
    )
    app = create_app(
        FunctionRegistry(default_namespace=namespace, region="us-east-1"),
        NoInstances(),
        Settings(),
        objects=KubernetesObjectStore(client),
        code_store=DirectoryCodeStore(tmp_path / "code"),
    )
    served = serve_in_thread(app)
    try:
        url, loop = next(served)
        yield make_lambda_client(url), kwok_service, namespace
        asyncio.run_coroutine_threadsafe(client.close(), loop).result(10)
    finally:
        served.close()
        kwok_service.kubectl("delete", "namespace", namespace, "--wait=false")


def listed(cluster: Cluster, namespace: str, what: str) -> list[dict[str, Any]]:
    body = json.loads(cluster.kubectl("-n", namespace, "get", what, "-o", "json").stdout)
    items: list[dict[str, Any]] = body["items"]
    return items


def test_versions_and_aliases_are_objects_kubectl_sees(
    cluster_api: tuple[Any, Cluster, str],
) -> None:
    api, cluster, namespace = cluster_api
    api.create_function(
        FunctionName="thumbnail", Role="arn:aws:iam::1:role/r", Runtime="python3.12",
        Handler="app.handler", Code={"ZipFile": handler_zip("return 1")},
    )  # fmt: skip
    before = api.get_function_configuration(FunctionName="thumbnail")
    first = api.publish_version(FunctionName="thumbnail", Description="first")
    after = api.get_function_configuration(FunctionName="thumbnail")
    assert (after["RevisionId"], after["LastModified"]) == (
        before["RevisionId"],
        before["LastModified"],
    )
    assert api.publish_version(FunctionName="thumbnail")["Version"] == first["Version"] == "1"
    api.update_function_code(FunctionName="thumbnail", ZipFile=handler_zip("return 2"))
    assert api.publish_version(FunctionName="thumbnail")["Version"] == "2"
    api.create_alias(
        FunctionName="thumbnail", Name="live", FunctionVersion="1",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )  # fmt: skip
    versions = listed(cluster, namespace, "functionversions")
    assert [v["metadata"]["name"] for v in versions] == ["thumbnail.1", "thumbnail.2"]
    assert versions[0]["spec"]["description"] == "first"
    table = cluster.kubectl("-n", namespace, "get", "functionaliases").stdout.splitlines()
    assert table[1].split()[:4] == ["thumbnail.live", "thumbnail", "1", '{"2":0.1}']
    moved = api.update_alias(
        FunctionName="thumbnail", Name="live", FunctionVersion="2",
        RoutingConfig={"AdditionalVersionWeights": {}},
    )  # fmt: skip
    assert moved["FunctionVersion"] == "2" and "RoutingConfig" not in moved
    assert [a["Name"] for a in api.list_aliases(FunctionName="thumbnail")["Aliases"]] == ["live"]
    assert [
        v["Version"] for v in api.list_versions_by_function(FunctionName="thumbnail")["Versions"]
    ] == ["$LATEST", "1", "2"]
    # The API server's own rule stands behind the gateway's: a version's spec does not change.
    edited = cluster.kubectl(
        "-n", namespace, "patch", "functionversion/thumbnail.1", "--type=merge",
        "-p", '{"spec": {"description": "rewritten"}}', check=False,
    )  # fmt: skip
    assert "a published version is immutable" in edited.stderr
    # One version at a time: not while the alias routes to it.
    with pytest.raises(api.exceptions.ResourceConflictException):
        api.delete_function(FunctionName="thumbnail", Qualifier="2")
    api.delete_function(FunctionName="thumbnail", Qualifier="1")
    names = [v["metadata"]["name"] for v in listed(cluster, namespace, "functionversions")]
    assert names == ["thumbnail.2"]
    api.delete_function(FunctionName="thumbnail")

    def collected() -> bool:
        return not listed(cluster, namespace, "functionversions,functionaliases")

    eventually(collected, within=60, what="versions and aliases collected with their function")
