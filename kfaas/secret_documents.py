"""Kubernetes Secrets written as YAML beside the manifests, for `kfaas dev` (ADR 027).

In a cluster a mapping's Kafka `tls.caSecretRef` and `auth.secretRef` name Secrets the poller
reads through the API. `kfaas dev` has no API server, so it reads the same `apiVersion: v1,
kind: Secret` documents from the files and folders it is given — `data` base64-encoded,
`stringData` as text, `stringData` winning for a key in both, as the API server merges them —
and keeps them in a `SecretBook` the pollers read when they (re)connect. The same manifests then
work with `kubectl apply` and with `kfaas dev`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from .manifests import ManifestError, manifest_files, read_documents

SecretKey = tuple[str, str]  # namespace, name
SecretData = dict[str, bytes]
# A Secret of one namespace by name: its data, or None (kfaas.brokers.kafka_security's reader).
SecretReader = Callable[[str], Awaitable[Mapping[str, bytes] | None]]

DEFAULT_NAMESPACE: Final = "default"
# Kubernetes' rules for a Secret's name (a DNS subdomain) and for its keys.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def is_secret(document: Any) -> bool:
    return (
        isinstance(document, Mapping)
        and document.get("apiVersion") == "v1"
        and document.get("kind") == "Secret"
    )


def parse_secret(document: Mapping[str, Any], source: str) -> tuple[SecretKey, SecretData]:
    """A Secret document's (namespace, name) and data; a ManifestError names what is wrong."""
    problems: list[str] = []
    metadata = document.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = metadata.get("name")
    namespace = metadata.get("namespace", DEFAULT_NAMESPACE)
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 253:
        problems.append(f"metadata.name {name!r} is not a valid Secret name")
    if not isinstance(namespace, str) or not _NAME.match(namespace):
        problems.append(f"metadata.namespace {namespace!r} is not a valid namespace")
    data: SecretData = {}
    for field in ("data", "stringData"):
        values = document.get(field) or {}
        if not isinstance(values, Mapping):
            problems.append(f"{field} must be a mapping of keys to values")
            continue
        for key, value in values.items():
            if not isinstance(key, str) or not _KEY.match(key):
                problems.append(f"{field}: {key!r} is not a valid Secret key")
            elif not isinstance(value, str):
                problems.append(f"{field}.{key} must be a string")
            elif field == "stringData":
                data[key] = value.encode("utf-8")
            else:
                try:
                    data[key] = base64.b64decode(value, validate=True)
                except binascii.Error:
                    problems.append(f"data.{key} is not base64 (use stringData for plain text)")
    if problems:
        raise ManifestError(source, [f"{source}: Secret: {problem}" for problem in problems])
    return (str(namespace), str(name)), data


def load_secrets(paths: Iterable[str | Path]) -> dict[SecretKey, SecretData]:
    """Every `v1` Secret in the files and folders `kfaas dev` reads manifests from.

    Missing paths and unreadable files are `load_manifests`' to report; here they are skipped.
    All problems of all Secrets are raised as one ManifestError.
    """
    files, _ = manifest_files(paths)
    secrets: dict[SecretKey, SecretData] = {}
    defined_in: dict[SecretKey, str] = {}
    problems: list[str] = []
    faulty: list[str] = []
    for path in files:
        try:
            documents = read_documents(path)
        except ManifestError:
            continue
        for number, document in enumerate(documents, start=1):
            if not is_secret(document):
                continue
            source = str(path) if len(documents) == 1 else f"{path} (document {number})"
            try:
                key, data = parse_secret(document, source)
            except ManifestError as exc:
                problems.extend(exc.problems)
                faulty.append(str(path))
                continue
            if key in defined_in:
                problems.append(
                    f"{source}: Secret {key[0]}/{key[1]} is already in {defined_in[key]}"
                )
                faulty.append(str(path))
                continue
            defined_in[key] = source
            secrets[key] = data
    if problems:
        raise ManifestError(", ".join(dict.fromkeys(faulty)), problems)
    return secrets


class SecretBook:
    """The Secrets `kfaas dev` read from its files; replaced whole at each reload."""

    def __init__(self, secrets: Mapping[SecretKey, SecretData] | None = None) -> None:
        self._secrets: dict[SecretKey, SecretData] = dict(secrets or {})

    def replace(self, secrets: Mapping[SecretKey, SecretData]) -> None:
        self._secrets = dict(secrets)

    def get(self, namespace: str, name: str) -> SecretData | None:
        return self._secrets.get((namespace, name))

    def reader(self, namespace: str) -> SecretReader:
        """Reads the book as it is at each call, so a Secret fixed in a file is seen next time."""

        async def read(name: str) -> Mapping[str, bytes] | None:
            return self.get(namespace, name)

        return read
