"""What a ``code.zip`` Function's pods need to run its uploaded zip (ADR 025).

The zip lives in the code store, not in a ConfigMap (1 MiB) or an image. Each pod gets an init
container (the function's own runtime image, ``kfaas fetch-code``, hardened like the runtime) that
downloads the zip with a read capability for exactly that digest, checks its sha256 and unpacks it
into the ``code`` emptyDir; the runtime container mounts that volume read-only at /var/task, as
Lambda's is. The capability travels in the function's token Secret (ADR 011's ``<name>-fn-token``,
key ``code-capability``) into the init container's environment only, never the handler's. The
digest is in the pod template (the init container's ``KFAAS_CODE_SHA256``), so a new zip rolls
the pods. Pure functions of (Function, config).
"""

from __future__ import annotations

from typing import Final

from kfaas import code_capabilities
from kfaas.code_digests import CodeDigest
from kfaas.manifests import Function

from .. import names
from ..config import OperatorConfig
from .common import CONTAINER_SECURITY, Body

CODE_VOLUME: Final = "code"
# Lambda's 250 MiB unzipped, plus the file system's block overhead.
CODE_SIZE_LIMIT: Final = "300Mi"
# The fetch step streams up to 50 MiB to /tmp and unpacks; it needs little memory of its own.
FETCH_RESOURCES: Final[Body] = {
    "requests": {"cpu": "100m", "memory": "64Mi"},
    "limits": {"memory": "256Mi"},
}


def stored_digest(function: Function) -> CodeDigest | None:
    """The digest of the function's uploaded zip, or None for other code sources."""
    stored = function.spec.code.zip
    return None if stored is None else CodeDigest(stored.sha256)


def read_capability(function: Function, config: OperatorConfig) -> str | None:
    """What opens the function's zip in the store (None: no zip, or no store configured)."""
    digest = stored_digest(function)
    if digest is None or config.code_store_key is None:
        return None
    return code_capabilities.read_capability(config.code_store_key, digest)


def code_volume() -> Body:
    return {"name": CODE_VOLUME, "emptyDir": {"sizeLimit": CODE_SIZE_LIMIT}}


def code_mount() -> Body:
    """The runtime container's view of the unpacked zip: read-only, as Lambda's /var/task."""
    return {"name": CODE_VOLUME, "mountPath": names.TASK_ROOT, "readOnly": True}


def fetch_container(function: Function, config: OperatorConfig, image: str) -> Body:
    """The init container that puts the zip into the ``code`` volume before the runtime starts."""
    digest = stored_digest(function)
    if digest is None or config.code_store_url is None:
        raise ValueError("a fetch container needs a code.zip Function and the code store's URL")
    secret = names.function_token(function.metadata.name, function.version)
    env: list[Body] = [
        {"name": "KFAAS_CODE_STORE_URL", "value": config.code_store_url},
        {"name": "KFAAS_CODE_SHA256", "value": digest.hex},
        {"name": "KFAAS_CODE_TARGET", "value": names.TASK_ROOT},
        {"name": "KFAAS_CODE_SCRATCH", "value": "/tmp"},
        {
            "name": "KFAAS_CODE_CAPABILITY",
            "valueFrom": {"secretKeyRef": {"name": secret, "key": code_capabilities.SECRET_KEY}},
        },
    ]
    return {
        "name": "fetch-code",
        "image": image,
        "imagePullPolicy": config.image_pull_policy,
        "command": ["kfaas", "fetch-code"],
        "env": env,
        "resources": FETCH_RESOURCES,
        "securityContext": CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": CODE_VOLUME, "mountPath": names.TASK_ROOT},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
