"""The Kubernetes side of a poller's status reports: its mapping's object, read and patched.

Credentials come from the pod's service account (the operator gives each poller a Role that may
read its mapping and patch its status, nothing else) or `$KUBECONFIG`; with neither, as under
`kfaas dev`, there is no store and nothing is reported. `KubeError` becomes `StatusError` here.
"""

from __future__ import annotations

import logging

from kfaas.kube_clients import Body, Credentials, KubeClient, KubeError

from .errors import StatusError

log = logging.getLogger("kfaas.pollers")

API_VERSION = "kfaas.dev/v1alpha1"
PLURAL = "eventsourcemappings"
FIELD_MANAGER = "kfaas-poller"


class KubeStatusStore:
    """One mapping's object through the Kubernetes API (a `status.StatusStore`)."""

    def __init__(self, client: KubeClient, namespace: str, name: str) -> None:
        self.client = client
        self.namespace = namespace
        self.name = name

    async def read(self) -> Body | None:
        try:
            return await self.client.find(API_VERSION, PLURAL, self.namespace, self.name)
        except KubeError as exc:
            raise StatusError(f"reading {self.namespace}/{self.name}: {exc}") from exc

    async def write(self, status: Body, resource_version: str) -> None:
        patch = {"metadata": {"resourceVersion": resource_version}, "status": status}
        try:
            await self.client.patch(
                API_VERSION, PLURAL, self.namespace, self.name, patch, subresource="status"
            )
        except KubeError as exc:
            raise StatusError(
                f"patching {self.namespace}/{self.name} status: {exc}", conflict=exc.status == 409
            ) from exc

    async def close(self) -> None:
        await self.client.close()


def connect(
    namespace: str, name: str, *, in_a_pod: bool, kubeconfig: str | None
) -> KubeStatusStore | None:
    """A store for the mapping when Kubernetes credentials are at hand (in a pod, or KUBECONFIG)."""
    if not (in_a_pod or kubeconfig):
        return None
    try:
        credentials = Credentials.load(None if in_a_pod else kubeconfig)
    except (KubeError, OSError, ValueError) as exc:
        log.warning("not reporting the mapping's status: %s", exc)
        return None
    return KubeStatusStore(KubeClient(credentials, field_manager=FIELD_MANAGER), namespace, name)
