"""Certificates and keys of the local control plane, made once with openssl and then kept.

One CA signs one key pair that serves the API (SANs for the in-cluster names, 127.0.0.1 and the
addresses a cluster adds, such as the real node's bridge address) and authenticates every client
as a member of `system:masters`; a separate RSA key signs service-account tokens. They live with
the cluster's state, so a kubeconfig handed out before a `down` still works after the next `up`.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from services.base import MissingDependency, ServiceError

_SERVER_AND_CLIENT = """\
basicConstraints = CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = DNS:kubernetes, DNS:kubernetes.default, DNS:kubernetes.default.svc, \
DNS:kubernetes.default.svc.cluster.local, DNS:localhost, IP:127.0.0.1, IP:10.96.0.1{extra}
"""


@dataclass(frozen=True)
class Pki:
    folder: Path
    addresses: Sequence[str] = ()  # more IP SANs for the serving certificate

    @property
    def ca_cert(self) -> Path:
        return self.folder / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.folder / "ca.key"

    @property
    def cert(self) -> Path:
        """Serves the API and authenticates every component and test (O=system:masters)."""
        return self.folder / "admin.crt"

    @property
    def key(self) -> Path:
        return self.folder / "admin.key"

    @property
    def service_account_key(self) -> Path:
        return self.folder / "sa.key"

    @property
    def service_account_public_key(self) -> Path:
        return self.folder / "sa.pub"

    def ensure(self) -> None:
        if (self.folder / ".complete").exists():
            return
        openssl = shutil.which("openssl")
        if openssl is None:
            raise MissingDependency(
                "openssl is not installed (it makes the cluster's certificates)"
            )
        self.folder.mkdir(parents=True, exist_ok=True)
        self.folder.chmod(0o700)
        extensions = self.folder / "admin.ext"
        extra = "".join(f", IP:{address}" for address in self.addresses)
        extensions.write_text(_SERVER_AND_CLIENT.format(extra=extra))
        request = self.folder / "admin.csr"
        steps = [
            ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "3650",
             "-keyout", self.ca_key, "-out", self.ca_cert, "-subj", "/CN=kfaas-local-ca",
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
            ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out", request,
             "-subj", "/O=system:masters/CN=kfaas-admin"],
            ["x509", "-req", "-in", request, "-CA", self.ca_cert, "-CAkey", self.ca_key,
             "-CAcreateserial", "-days", "3650", "-sha256", "-extfile", extensions,
             "-out", self.cert],
            ["genrsa", "-out", self.service_account_key, "2048"],
            ["rsa", "-in", self.service_account_key, "-pubout",
             "-out", self.service_account_public_key],
        ]  # fmt: skip
        for step in steps:
            done = subprocess.run(
                [openssl, *map(str, step)], capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                raise ServiceError(f"openssl {step[0]} failed:\n{done.stderr}")
        (self.folder / ".complete").write_text("ok\n")
