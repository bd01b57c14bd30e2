"""What ``kfaas code-store`` and ``kfaas fetch-code`` are configured with, read once (ADR 020).

The store: its folder (the PVC's mount), its key (the chart's ``<release>-code-store-key``, from a
variable or a file), its port and the garbage collector's period and grace. The fetch step (the
function pod's init container): the store's URL, the digest to fetch, the read capability the
operator put into the function's token Secret, and the folder to unpack into. A bad or missing
value raises ValueError naming the variable; the commands print it as one line and exit 2.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from kfaas.code_capabilities import KEY_ENV
from kfaas.code_digests import CodeDigest
from kfaas.config import port, seconds

DEFAULT_DIR: Final = "/var/lib/kfaas/code"
DEFAULT_PORT: Final = 8090
KEY_FILE_ENV: Final = "KFAAS_CODE_STORE_KEY_FILE"
URL_ENV: Final = "KFAAS_CODE_STORE_URL"
SHA256_ENV: Final = "KFAAS_CODE_SHA256"
CAPABILITY_ENV: Final = "KFAAS_CODE_CAPABILITY"


def process_environment() -> Mapping[str, str]:
    """This process's environment: read by the settings builders below, and nowhere else."""
    return os.environ


def store_key(environ: Mapping[str, str]) -> str | None:
    """The store key from KFAAS_CODE_STORE_KEY, else the file KFAAS_CODE_STORE_KEY_FILE names."""
    key = environ.get(KEY_ENV, "").strip()
    if key:
        return key
    path = environ.get(KEY_FILE_ENV, "").strip()
    if not path:
        return None
    try:
        key = Path(path).read_text().strip()
    except OSError as exc:
        raise ValueError(f"{KEY_FILE_ENV}={path!r} cannot be read: {exc.strerror}") from None
    if not key:
        raise ValueError(f"{KEY_FILE_ENV}={path!r} is empty")
    return key


@dataclass(frozen=True)
class StoreSettings:
    """``kfaas code-store``."""

    folder: Path
    key: str = field(repr=False)
    host: str = "0.0.0.0"
    port: int = DEFAULT_PORT
    # Mark and sweep (ADR 025): every gc_interval, blobs unmarked and older than gc_grace go.
    gc: bool = True
    gc_interval: float = 3600.0
    gc_grace: float = 3600.0
    kubeconfig: str | None = None
    # The chart's watchNamespace: Functions live in that namespace only (None: every namespace).
    watch_namespace: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> StoreSettings:
        environ = process_environment() if environ is None else environ
        gc = environ.get("KFAAS_CODE_STORE_GC", "true").strip().lower()
        if gc not in ("true", "false", "1", "0", ""):
            raise ValueError(f"KFAAS_CODE_STORE_GC={gc!r} must be true or false")
        interval = seconds(environ, "KFAAS_CODE_STORE_GC_INTERVAL_SECONDS", 3600.0)
        if interval <= 0:
            raise ValueError("KFAAS_CODE_STORE_GC_INTERVAL_SECONDS must be more than 0")
        grace = seconds(environ, "KFAAS_CODE_STORE_GC_GRACE_SECONDS", 3600.0)
        chosen_port = port(environ, "KFAAS_CODE_STORE_PORT", DEFAULT_PORT)
        key = store_key(environ)
        if key is None:
            raise ValueError(f"{KEY_ENV} or {KEY_FILE_ENV} must give the code store's key")
        return cls(
            folder=Path(environ.get("KFAAS_CODE_STORE_DIR") or DEFAULT_DIR),
            key=key,
            host=environ.get("KFAAS_CODE_STORE_HOST") or "0.0.0.0",
            port=chosen_port,
            gc=gc in ("true", "1", ""),
            gc_interval=interval,
            gc_grace=grace,
            kubeconfig=environ.get("KUBECONFIG") or None,
            watch_namespace=environ.get("KFAAS_WATCH_NAMESPACE") or None,
        )


@dataclass(frozen=True)
class FetchSettings:
    """``kfaas fetch-code``: what the init container fetches, from where, into which folder."""

    url: str
    digest: CodeDigest
    capability: str = field(repr=False)
    target: Path = Path("/var/task")
    scratch: Path = Path("/tmp")
    timeout: float = 120.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> FetchSettings:
        environ = process_environment() if environ is None else environ
        url = environ.get(URL_ENV, "").strip().rstrip("/")
        if url and not url.startswith(("http://", "https://")):
            raise ValueError(f"{URL_ENV}={url!r} must be an http:// or https:// URL")
        missing = [
            name for name in (URL_ENV, SHA256_ENV, CAPABILITY_ENV) if not environ.get(name, "")
        ]
        if missing:
            raise ValueError(f"{', '.join(missing)} must be set")
        try:
            digest = CodeDigest(environ[SHA256_ENV].strip())
        except ValueError:
            raise ValueError(f"{SHA256_ENV} must be a sha256 in 64 lowercase hex digits") from None
        return cls(
            url=url,
            digest=digest,
            capability=environ[CAPABILITY_ENV].strip(),
            target=Path(environ.get("KFAAS_CODE_TARGET") or "/var/task"),
            scratch=Path(environ.get("KFAAS_CODE_SCRATCH") or "/tmp"),
            timeout=seconds(environ, "KFAAS_CODE_FETCH_TIMEOUT_SECONDS", 120.0),
        )
