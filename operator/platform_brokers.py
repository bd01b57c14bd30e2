"""What poller pods are given of the platform's own Kafka and Redis (ADR 032).

A destination that names no server of its own goes to the platform's cluster (ADR 027's
"Platform Kafka"): a Redis mapping's Kafka on-failure destination, a Kafka mapping's Redis one.
The poller in the mapping's namespace then needs what the gateway has: the bootstrap servers and
the ``KFAAS_KAFKA_*`` security settings, or ``KFAAS_REDIS_URL``. The chart gives the operator the
same variables and mounts as the gateway, plus the names of the Secrets behind the files
(``KFAAS_KAFKA_CA_SECRET``, ``KFAAS_KAFKA_AUTH_SECRET``, ``KFAAS_REDIS_URL_SECRET``). The operator
copies the plain values and mounts those Secrets by name at the same paths: it may not read
Secrets itself (ADR 027), and a password never enters a pod spec. A pod mounts Secrets of its own
namespace only, so the Secrets are looked up in the mapping's namespace under the same names: the
platform's operator puts them there (or a credential of that namespace's own under that name).

Read once from the environment at the entry point (``OperatorConfig.from_env``); a variable that
the pods could not be given raises ValueError naming it.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping
from dataclasses import dataclass

Body = dict[str, object]

# Copied as they are: none holds a secret (files are paths, the mechanism a name).
_KAFKA_VALUES = (
    "KFAAS_KAFKA_TLS",
    "KFAAS_KAFKA_CA_FILE",
    "KFAAS_KAFKA_CERT_FILE",
    "KFAAS_KAFKA_KEY_FILE",
    "KFAAS_KAFKA_SASL_MECHANISM",
    "KFAAS_KAFKA_PASSWORD_FILE",
)
_AUTH_FILES = ("KFAAS_KAFKA_CERT_FILE", "KFAAS_KAFKA_KEY_FILE", "KFAAS_KAFKA_PASSWORD_FILE")


@dataclass(frozen=True)
class SecretMount:
    """A Secret of the mapping's namespace mounted read-only at ``folder``; ``keys``: only these
    keys, each a file of its name (empty: every key)."""

    secret: str
    folder: str
    keys: tuple[str, ...] = ()


@dataclass(frozen=True)
class PlatformKafka:
    """The platform Kafka as poller pods get it; the default: none configured."""

    bootstrap_servers: str | None = None
    values: tuple[tuple[str, str], ...] = ()
    # KFAAS_KAFKA_USERNAME comes from this Secret's key ``username`` (SASL only).
    username_secret: str | None = None
    mounts: tuple[SecretMount, ...] = ()

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PlatformKafka:
        if environ.get("KFAAS_KAFKA_PASSWORD", "").strip():
            raise ValueError(
                "KFAAS_KAFKA_PASSWORD: poller pods get the platform Kafka password from a "
                "mounted Secret, never their environment; set KFAAS_KAFKA_PASSWORD_FILE and "
                "KFAAS_KAFKA_AUTH_SECRET instead"
            )
        values = tuple(
            (name, environ[name].strip()) for name in _KAFKA_VALUES if environ.get(name, "").strip()
        )
        found = dict(values)
        mounts = []
        ca_file = found.get("KFAAS_KAFKA_CA_FILE")
        if ca_file is not None:
            secret = _secret(environ, "KFAAS_KAFKA_CA_SECRET", "KFAAS_KAFKA_CA_FILE")
            folder, key = _split(ca_file, "KFAAS_KAFKA_CA_FILE")
            mounts.append(SecretMount(secret, folder, (key,)))
        auth_files = [name for name in _AUTH_FILES if name in found]
        mechanism = found.get("KFAAS_KAFKA_SASL_MECHANISM")
        auth_secret = None
        if auth_files or mechanism:
            auth_secret = _secret(
                environ,
                "KFAAS_KAFKA_AUTH_SECRET",
                (auth_files or ["KFAAS_KAFKA_SASL_MECHANISM"])[0],
            )
        folders = {_split(found[name], name)[0] for name in auth_files}
        if len(folders) > 1:
            raise ValueError(
                f"{', '.join(auth_files)} must be files of one folder: the mount of "
                "KFAAS_KAFKA_AUTH_SECRET in poller pods"
            )
        if auth_secret is not None and folders:
            mounts.append(SecretMount(auth_secret, folders.pop()))
        return cls(
            bootstrap_servers=environ.get("KFAAS_KAFKA_BOOTSTRAP_SERVERS", "").strip() or None,
            values=values,
            username_secret=auth_secret if mechanism else None,
            mounts=tuple(mounts),
        )

    def env(self) -> list[Body]:
        """The poller container's variables for the platform Kafka."""
        env: list[Body] = []
        if self.bootstrap_servers is not None:
            env.append({"name": "KFAAS_KAFKA_BOOTSTRAP_SERVERS", "value": self.bootstrap_servers})
        env += [{"name": name, "value": value} for name, value in self.values]
        if self.username_secret is not None:
            reference = {"name": self.username_secret, "key": "username"}
            env.append({"name": "KFAAS_KAFKA_USERNAME", "valueFrom": {"secretKeyRef": reference}})
        return env


@dataclass(frozen=True)
class PlatformRedis:
    """The platform Redis as poller pods get it: a plain URL, or a Secret's key holding it."""

    url: str | None = None
    url_secret: tuple[str, str] | None = None  # (Secret, key)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> PlatformRedis:
        secret = environ.get("KFAAS_REDIS_URL_SECRET", "").strip()
        if secret:
            key = environ.get("KFAAS_REDIS_URL_SECRET_KEY", "").strip() or "url"
            return cls(url_secret=(secret, key))
        return cls(url=environ.get("KFAAS_REDIS_URL", "").strip() or None)

    def env(self) -> list[Body]:
        if self.url_secret is not None:
            name, key = self.url_secret
            reference = {"name": name, "key": key}
            return [{"name": "KFAAS_REDIS_URL", "valueFrom": {"secretKeyRef": reference}}]
        if self.url is not None:
            return [{"name": "KFAAS_REDIS_URL", "value": self.url}]
        return []


def _secret(environ: Mapping[str, str], variable: str, needed_by: str) -> str:
    name = environ.get(variable, "").strip()
    if not name:
        raise ValueError(
            f"{needed_by} needs {variable}: the Secret poller pods mount it from (ADR 032)"
        )
    return name


def _split(path: str, variable: str) -> tuple[str, str]:
    """(folder, file name) of an absolute path: the mount point and the Secret's key."""
    folder, name = posixpath.split(posixpath.normpath(path))
    if not posixpath.isabs(path) or not name or folder == "/":
        raise ValueError(f"{variable}={path!r} must be an absolute path to a file in a folder")
    return folder, name
