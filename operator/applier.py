"""The reconciler's only way to write: apply desired objects on a difference, record each write.

Every child the operator owns carries the hash of its desired form (``kfaas.dev/desired-hash``);
``Applier.ensure`` reads the live object and server-side applies (as ``kfaas-operator``) only when
that hash differs, so a restarted operator rewrites nothing that is already right. The runtime
Deployment has one more rule (ADR 008): its ``replicas`` belong to the autoscaler, so
``ensure_workload`` sets them only when it creates the Deployment, and hands the field to the
autoscaler's field manager at once. Each write is recorded in ``written`` ("Deployment/x-fn"),
which the handler logs: one ``Applier`` per reconcile pass.
"""

from __future__ import annotations

from typing import Any

from kfaas.kube_clients import KubeClient

from . import names
from .resources.common import desired_hash, live_hash

Body = dict[str, Any]

# kind → plural of what the operator creates.
PLURALS = {
    "ConfigMap": "configmaps",
    "ServiceAccount": "serviceaccounts",
    "Secret": "secrets",
    "Service": "services",
    "Deployment": "deployments",
    "NetworkPolicy": "networkpolicies",
    "PodDisruptionBudget": "poddisruptionbudgets",
    "Role": "roles",
    "RoleBinding": "rolebindings",
}


class Applier:
    """Applies desired objects through ``client``; ``written`` lists what it actually wrote."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self.written: list[str] = []

    def _note(self, kind: str, name: str) -> None:
        self.written.append(f"{kind}/{name}")

    async def find(self, api_version: str, plural: str, namespace: str, name: str) -> Body | None:
        return await self.client.find(api_version, plural, namespace, name)

    async def list(self, api_version: str, plural: str, namespace: str, selector: str) -> Body:
        return await self.client.list(api_version, plural, namespace, label_selector=selector)

    async def apply(self, desired: Body, *, field_manager: str | None = None) -> Body:
        """Apply ``desired`` unconditionally (the caller has compared), and record it."""
        self._note(desired["kind"], desired["metadata"]["name"])
        return await self._write(desired, field_manager)

    async def ensure(self, desired: Body) -> Body:
        """The live object after making it match ``desired``; no write when the hash is the same."""
        live = await self._live(desired)
        if live is not None and live_hash(live) == desired_hash(desired):
            return live
        return await self.apply(desired)

    async def ensure_absent(self, api_version: str, kind: str, namespace: str, name: str) -> None:
        if await self.client.delete(api_version, PLURALS[kind], namespace, name):
            self._note(kind, name)

    async def ensure_workload(self, desired: Body, *, scale: Body, secret: Body | None) -> Body:
        """Apply a runtime Deployment; a new one starts at ``scale``'s replicas, the autoscaler's.

        The reconciler never sets ``replicas`` on an existing Deployment. At creation it does (so
        a function with no floor starts with no pod, not Kubernetes' default one) and the
        autoscaler's field manager applies ``scale`` (the same value, ``make_replicas``) at once:
        from then on the autoscaler alone owns the field, and the reconciler's later applies,
        which leave it out, do not reset it. ``secret`` (the runtime token's, ADR 011) goes with
        each Deployment write, whose template carries the token's fingerprint: the operator may
        write Secrets but never read one.
        """
        live = await self._live(desired)
        if live is not None and live_hash(live) == desired_hash(desired):
            return live
        if secret is not None:
            await self.apply(secret)
        if live is not None:
            return await self.apply(desired)
        self._note(desired["kind"], desired["metadata"]["name"])
        floor = scale["spec"]["replicas"]
        await self._write({**desired, "spec": {**desired["spec"], "replicas": floor}}, None)
        return await self._write(scale, names.AUTOSCALER_FIELD_MANAGER)

    async def _write(self, desired: Body, field_manager: str | None) -> Body:
        plural = PLURALS[desired["kind"]]
        return await self.client.apply(desired, plural, field_manager=field_manager)

    async def _live(self, desired: Body) -> Body | None:
        meta = desired["metadata"]
        plural = PLURALS[desired["kind"]]
        return await self.client.find(
            desired["apiVersion"], plural, meta["namespace"], meta["name"]
        )
