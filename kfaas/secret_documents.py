"""Kubernetes Secrets and ConfigMaps written as YAML beside the manifests, for `kfaas dev`.

In a cluster a mapping's Kafka `tls.caSecretRef` and `auth.secretRef` name Secrets the poller
reads (ADR 027), and a Function's `envFrom` names Secrets and ConfigMaps the kubelet turns into
variables. `kfaas dev` has no API server, so it reads the same `apiVersion: v1` documents from the
files and folders it is given — a Secret's `data` base64-encoded and `stringData` as text
(`stringData` winning for a key in both, as the API server merges them), a ConfigMap's `data` —
and keeps them in a `SecretBook` the pollers read when they (re)connect and instances read when
they start (`environment_from`, Kubernetes' `envFrom` rules). The same manifests then work with
`kubectl apply` and with `kfaas dev`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final

from .manifests import EnvFromSource, ManifestError, load_documents

SecretKey = tuple[str, str]  # namespace, name
SecretData = dict[str, bytes]
# A Secret of one namespace by name: its data, or None (kfaas.brokers.kafka_security's reader).
SecretReader = Callable[[str], Awaitable[Mapping[str, bytes] | None]]

DEFAULT_NAMESPACE: Final = "default"
# Kubernetes' rules for a Secret's name (a DNS subdomain) and for its keys.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def is_secret(document: Any) -> bool:
    return _is_v1(document, "Secret")


def is_config_map(document: Any) -> bool:
    return _is_v1(document, "ConfigMap")


def _is_v1(document: Any, kind: str) -> bool:
    return (
        isinstance(document, Mapping)
        and document.get("apiVersion") == "v1"
        and document.get("kind") == kind
    )


def _identity(document: Mapping[str, Any], kind: str, problems: list[str]) -> SecretKey:
    metadata = document.get("metadata")
    metadata = metadata if isinstance(metadata, Mapping) else {}
    name = metadata.get("name")
    namespace = metadata.get("namespace", DEFAULT_NAMESPACE)
    if not isinstance(name, str) or not _NAME.match(name) or len(name) > 253:
        problems.append(f"metadata.name {name!r} is not a valid {kind} name")
    if not isinstance(namespace, str) or not _NAME.match(namespace):
        problems.append(f"metadata.namespace {namespace!r} is not a valid namespace")
    return str(namespace), str(name)


def _values(document: Mapping[str, Any], field: str, problems: list[str]) -> Mapping[Any, Any]:
    values = document.get(field) or {}
    if not isinstance(values, Mapping):
        problems.append(f"{field} must be a mapping of keys to values")
        return {}
    return values


def parse_secret(document: Mapping[str, Any], source: str) -> tuple[SecretKey, SecretData]:
    """A Secret document's (namespace, name) and data; a ManifestError names what is wrong."""
    problems: list[str] = []
    key = _identity(document, "Secret", problems)
    data: SecretData = {}
    for field in ("data", "stringData"):
        for name, value in _values(document, field, problems).items():
            if not isinstance(name, str) or not _KEY.match(name):
                problems.append(f"{field}: {name!r} is not a valid Secret key")
            elif not isinstance(value, str):
                problems.append(f"{field}.{name} must be a string")
            elif field == "stringData":
                data[name] = value.encode("utf-8")
            else:
                try:
                    data[name] = base64.b64decode(value, validate=True)
                except binascii.Error:
                    problems.append(f"data.{name} is not base64 (use stringData for plain text)")
    if problems:
        raise ManifestError(source, [f"{source}: Secret: {problem}" for problem in problems])
    return key, data


def parse_config_map(document: Mapping[str, Any], source: str) -> tuple[SecretKey, SecretData]:
    """A ConfigMap document's (namespace, name) and `data` (as bytes, like a Secret's)."""
    problems: list[str] = []
    key = _identity(document, "ConfigMap", problems)
    data: SecretData = {}
    for name, value in _values(document, "data", problems).items():
        if not isinstance(name, str) or not _KEY.match(name):
            problems.append(f"data: {name!r} is not a valid ConfigMap key")
        elif not isinstance(value, str):
            problems.append(f"data.{name} must be a string")
        else:
            data[name] = value.encode("utf-8")
    if problems:
        raise ManifestError(source, [f"{source}: ConfigMap: {problem}" for problem in problems])
    return key, data


def load_secrets(paths: Iterable[str | Path]) -> dict[SecretKey, SecretData]:
    """Every `v1` Secret in the files and folders `kfaas dev` reads manifests from.

    Missing paths and unreadable files are `load_manifests`' to report; here they are skipped.
    All problems of all Secrets are raised as one ManifestError.
    """
    return load_documents(paths, is_secret, parse_secret, "Secret")


def load_config_maps(paths: Iterable[str | Path]) -> dict[SecretKey, SecretData]:
    """Every `v1` ConfigMap in those files and folders, as `load_secrets` reads Secrets."""
    return load_documents(paths, is_config_map, parse_config_map, "ConfigMap")


class SecretBook:
    """The Secrets (and ConfigMaps) `kfaas dev` read from its files; replaced at each reload."""

    def __init__(
        self,
        secrets: Mapping[SecretKey, SecretData] | None = None,
        config_maps: Mapping[SecretKey, SecretData] | None = None,
    ) -> None:
        self._secrets: dict[SecretKey, SecretData] = dict(secrets or {})
        self._config_maps: dict[SecretKey, SecretData] = dict(config_maps or {})

    def replace(
        self,
        secrets: Mapping[SecretKey, SecretData],
        config_maps: Mapping[SecretKey, SecretData] | None = None,
    ) -> None:
        self._secrets = dict(secrets)
        if config_maps is not None:
            self._config_maps = dict(config_maps)

    def get(self, namespace: str, name: str) -> SecretData | None:
        return self._secrets.get((namespace, name))

    def config_map(self, namespace: str, name: str) -> SecretData | None:
        return self._config_maps.get((namespace, name))

    def reader(self, namespace: str) -> SecretReader:
        """Reads the book as it is at each call, so a Secret fixed in a file is seen next time."""

        async def read(name: str) -> Mapping[str, bytes] | None:
            return self.get(namespace, name)

        return read


class EnvFromMissing(LookupError):
    """A Function's `envFrom` names a Secret or ConfigMap that does not exist and is not optional
    (a pod would wait in CreateContainerConfigError); the message names it."""


# Kubernetes' rule for an environment variable's name; other keys are skipped, as the kubelet does.
_ENV_NAME: Final = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def environment_from(
    sources: Iterable[EnvFromSource], namespace: str, book: SecretBook
) -> dict[str, str]:
    """The variables a Function's `envFrom` gives, in order (a later source wins a name)."""
    env: dict[str, str] = {}
    for source in sources:
        if source.secret_ref is not None:
            ref, kind, data = source.secret_ref, "Secret", book.get
        else:
            assert source.config_map_ref is not None  # exactly one of the two (the model's rule)
            ref, kind, data = source.config_map_ref, "ConfigMap", book.config_map
        values = data(namespace, ref.name)
        if values is None:
            if ref.optional:
                continue
            raise EnvFromMissing(
                f"envFrom: {kind} {namespace}/{ref.name} does not exist (write it as a "
                f"`kind: {kind}` document beside the manifests, or mark it optional)"
            )
        for key, value in values.items():
            name = (source.prefix or "") + key
            if _ENV_NAME.match(name):
                env[name] = value.decode("utf-8", "replace")
    return env
