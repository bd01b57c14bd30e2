"""The Kubernetes store as the chart's gateway ServiceAccount: the chart grants exactly what the
management API writes, and what it does not grant comes back as the platform's misconfiguration
(StoreUnavailable naming RBAC), not as a client's error."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from chart import helm_build
from chart.platform import Platform, install
from services.cluster import Cluster

from kfaas import object_store as store
from kfaas.gateway.kube_store import KubernetesObjectStore
from kfaas.kube_clients import Credentials, KubeClient

from .test_conformance import function, mapping

pytestmark = pytest.mark.kwok


@pytest.fixture(scope="module")
def platform(kwok_service: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    platform = install(helm_build.build(), kwok_service, tmp_path_factory.mktemp("stores"))
    yield platform
    kwok_service.kubectl("delete", "namespace", "--wait=false", platform.namespace)


@pytest.fixture
async def gateway_store(platform: Platform) -> AsyncIterator[KubernetesObjectStore]:
    credentials = Credentials.load(str(platform.token_kubeconfig("kfaas-gateway")))
    async with KubeClient(credentials, field_manager=store.GATEWAY_MANAGER) as client:
        yield KubernetesObjectStore(client)


async def test_the_gateway_account_writes_what_the_management_api_needs(
    platform: Platform, gateway_store: KubernetesObjectStore
) -> None:
    namespace = f"team-{uuid.uuid4().hex[:6]}"
    platform.cluster.kubectl("create", "namespace", namespace)
    try:
        created = await gateway_store.create(
            store.FUNCTIONS, function(namespace, "hello"), field_manager=store.GATEWAY_MANAGER
        )
        listed = await gateway_store.list(store.FUNCTIONS, namespace)
        assert [f["metadata"]["name"] for f in listed] == ["hello"]
        body = function(namespace, "hello", memory=256)
        body["metadata"]["resourceVersion"] = created["metadata"]["resourceVersion"]
        replaced = await gateway_store.replace(
            store.FUNCTIONS, body, field_manager=store.GATEWAY_MANAGER
        )
        assert replaced["metadata"]["generation"] == 2
        owned = await gateway_store.create(
            store.EVENT_SOURCE_MAPPINGS, mapping(namespace, replaced, generateName="hello-"),
            field_manager=store.GATEWAY_MANAGER,
        )  # fmt: skip
        # Status is the operator's: the gateway in a cluster never writes it.
        with pytest.raises(store.StoreUnavailable, match="gateway's RBAC lacks this verb"):
            await gateway_store.write_status(store.FUNCTIONS, namespace, "hello", {"x": 1})
        await gateway_store.delete(
            store.EVENT_SOURCE_MAPPINGS, namespace, owned["metadata"]["name"]
        )
        await gateway_store.delete(store.FUNCTIONS, namespace, "hello")
        with pytest.raises(store.ObjectNotFound):
            await gateway_store.get(store.FUNCTIONS, namespace, "hello")
    finally:
        platform.cluster.kubectl("delete", "namespace", "--wait=false", namespace)
