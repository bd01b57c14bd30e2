"""The Secrets a mapping's Kafka `tls`/`auth` name, as a poller reads them (ADR 027).

In a pod the operator mounts each named Secret (optional) as a folder under
`KFAAS_POLLER_SECRETS_DIR`, one file per key, and `FolderSecrets` reads them at every (re)connect:
the kubelet refreshes the files when the Secret changes, so a fixed password is used at the next
attempt without a restart or a rollout. A `kfaas poller` run by hand with a `KUBECONFIG` reads them
through the API with those credentials (`KubeSecrets`); under `kfaas dev` they come from the
manifest files (`kfaas.secret_documents.SecretBook`).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping
from pathlib import Path

from kfaas.brokers.errors import KafkaAuthError
from kfaas.kube_clients import Credentials, KubeClient, KubeError

log = logging.getLogger("kfaas.pollers")

FIELD_MANAGER = "kfaas-poller"


def secret_data(body: Mapping[str, object], name: str) -> dict[str, bytes]:
    """A Secret object's `data`, decoded (the API returns `stringData` merged into it)."""
    data = body.get("data") or {}
    if not isinstance(data, Mapping):
        raise KafkaAuthError(f"Secret {name!r}: data is not a mapping")
    try:
        return {
            str(key): base64.b64decode(str(value), validate=True) for key, value in data.items()
        }
    except binascii.Error:
        raise KafkaAuthError(f"Secret {name!r}: a value of data is not base64") from None


class FolderSecrets:
    """Secrets mounted as folders (`<root>/<name>/<key>`), read anew at each call."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    async def read(self, name: str) -> Mapping[str, bytes] | None:
        folder = self.root / name
        if not folder.is_dir():
            return None
        try:
            # The kubelet's own entries (`..data`, the timestamped folder) start with "..".
            data = {
                entry.name: entry.read_bytes()
                for entry in folder.iterdir()
                if not entry.name.startswith("..") and entry.is_file()
            }
        except OSError as exc:
            raise KafkaAuthError(f"Secret {name!r} cannot be read from {folder}: {exc}") from exc
        # An optional Secret that does not exist is mounted as an empty folder.
        return data or None

    async def close(self) -> None:
        return None


class KubeSecrets:
    """The Secrets of one namespace, read with the pod's ServiceAccount (a `SecretReader`)."""

    def __init__(self, client: KubeClient, namespace: str) -> None:
        self.client = client
        self.namespace = namespace

    async def read(self, name: str) -> Mapping[str, bytes] | None:
        try:
            body = await self.client.find("v1", "secrets", self.namespace, name)
        except KubeError as exc:
            # Forbidden (a Secret the mapping did not name when the Role was made) or an API
            # server out of reach: the connection cannot be secured, so it is not attempted.
            raise KafkaAuthError(f"Secret {self.namespace}/{name} cannot be read: {exc}") from exc
        return None if body is None else secret_data(body, name)

    async def close(self) -> None:
        await self.client.close()


def secrets_for(
    namespace: str, *, folder: str, kubeconfig: str | None
) -> FolderSecrets | KubeSecrets | None:
    """Where this poller reads Secrets: the mounted folder, else the API with a kubeconfig."""
    if folder:
        return FolderSecrets(folder)
    if not kubeconfig:
        return None
    try:
        credentials = Credentials.load(kubeconfig)
    except (KubeError, OSError, ValueError) as exc:
        log.warning("cannot read Kafka Secrets through the Kubernetes API: %s", exc)
        return None
    return KubeSecrets(KubeClient(credentials, field_manager=FIELD_MANAGER), namespace)
