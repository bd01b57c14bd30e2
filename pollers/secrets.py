"""The Secrets a mapping's Kafka `tls`/`auth` name, as a poller reads them (ADR 027).

In a pod the operator mounts each named Secret (optional) as a folder under
`KFAAS_POLLER_SECRETS_DIR`, one file per key, and `FolderSecrets` reads them at every (re)connect:
the kubelet refreshes the files when the Secret changes, so a fixed password is used at the next
attempt without a restart or a rollout. A `kfaas poller` run by hand takes the same layout
(`<dir>/<secret>/<key>`); under `kfaas dev` the Secrets come from the manifest files
(`kfaas.secret_documents.SecretBook`). The poller never reads Secrets through the API: its
ServiceAccount may not (ADR 027).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from kfaas.brokers.errors import KafkaAuthError


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


def secrets_for(folder: str) -> FolderSecrets | None:
    """Where this poller reads Secrets: the mounted folder (KFAAS_POLLER_SECRETS_DIR), if any."""
    return FolderSecrets(folder) if folder else None
