"""Installs the chart into the test cluster and runs the operator as its ServiceAccount.

Pods never run on kwok nodes, so the operator Deployment the chart creates only turns Ready; the
operator that does the work is a local process whose kubeconfig holds a token of the chart's
operator ServiceAccount. Every request it makes is therefore judged by the chart's RBAC: if the
chart forgot a permission, the operator tests fail.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.cluster import Cluster
from waiting import eventually

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kfaas"
RELEASE = "kfaas"


@dataclass
class Platform:
    cluster: Cluster
    namespace: str
    peering: str
    workdir: Path
    # Where the module's operator process serves /metrics (KFAAS_OPERATOR_METRICS_PORT).
    operator_metrics_port: int = 0

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        done = self.cluster.kubectl(*args, input=input, check=check)
        return done.stdout + done.stderr

    def apply(
        self, manifest: dict[str, Any] | str, *, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        text = manifest if isinstance(manifest, str) else json.dumps(manifest)
        return self.cluster.kubectl("apply", "-f", "-", input=text, check=check)

    def token_kubeconfig(self, service_account: str) -> Path:
        """A kubeconfig that authenticates as one of the chart's ServiceAccounts."""
        token = self.cluster.kubectl(
            "-n", self.namespace, "create", "token", service_account, "--duration=2h"
        ).stdout.strip()
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "c", "cluster": {
                "server": self.cluster.server,
                "certificate-authority": str(self.cluster.pki.ca_cert),
            }}],
            "users": [{"name": service_account, "user": {"token": token}}],
            "contexts": [{"name": "c", "context": {"cluster": "c", "user": service_account}}],
            "current-context": "c",
        }  # fmt: skip
        path = self.workdir / f"{service_account}.kubeconfig"
        path.write_text(json.dumps(config))
        return path


def render(helm: Path, namespace: str, *values: str, include_crds: bool = True) -> str:
    argv = [str(helm), "template", RELEASE, str(CHART), "--namespace", namespace]
    if include_crds:
        argv.append("--include-crds")
    for value in values:
        argv += ["--set", value]
    return subprocess.run(argv, check=True, capture_output=True, text=True).stdout


def install(helm: Path, cluster: Cluster, workdir: Path) -> Platform:
    suffix = uuid.uuid4().hex[:6]
    platform = Platform(cluster, f"kfaas-{suffix}", f"kfaas-{suffix}", workdir)
    cluster.kubectl("create", "namespace", platform.namespace)
    # As `helm install` does: the chart's crds/ first, established, then the templates.
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/functions.kfaas.dev", "crd/eventsourcemappings.kfaas.dev",
        "crd/clusterkopfpeerings.kopf.dev", "crd/kopfpeerings.kopf.dev",
    )  # fmt: skip
    rendered = render(
        helm, platform.namespace, f"operator.peeringName={platform.peering}", include_crds=False
    )
    cluster.kubectl(
        "apply", "--server-side", "--force-conflicts", "-n", platform.namespace, "-f", "-",
        input=rendered,
    )  # fmt: skip
    return platform


@contextmanager
def operator_process(
    platform: Platform, ready: str = "autoscaler active", **environment: str
) -> Iterator[Path]:
    """`kfaas operator` as the chart's operator ServiceAccount, once its log shows ``ready``.

    Yields the path of its log.
    """
    kubeconfig = platform.token_kubeconfig(f"{RELEASE}-operator")
    log_path = platform.workdir / f"operator-{uuid.uuid4().hex[:6]}.log"
    env = {
        **os.environ,
        "KUBECONFIG": str(kubeconfig),
        "KFAAS_PLATFORM_NAMESPACE": platform.namespace,
        "KFAAS_PEERING_NAME": platform.peering,
        "KFAAS_IMAGE": "kfaas:test",
        "KFAAS_SCALING_STABLE_WINDOW_SECONDS": "3",
        "KFAAS_GATEWAY_POD_LABELS": f"app.kubernetes.io/instance={RELEASE},"
        "app.kubernetes.io/component=gateway",
        **environment,
    }
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "kfaas"), "operator"],
            env=env, stdout=log, stderr=subprocess.STDOUT, text=True, cwd=platform.workdir,
        )  # fmt: skip
    try:

        def started() -> bool:
            log = log_path.read_text()
            assert process.poll() is None, f"the operator exited before {ready!r}:\n{log}"
            return ready in log

        eventually(started, within=60, what=f"{ready!r} from the operator (log: {log_path})")
        yield log_path
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        # Kopf reports the handlers' retried failures (which tests provoke) as errors; an error
        # of kfaas's own, or any traceback, is a bug.
        errors = [
            line
            for line in log_path.read_text().splitlines()
            if ('"level": "error"' in line and '"logger": "kfaas' in line) or "Traceback" in line
        ]
        assert not errors, "the operator logged errors:\n" + "\n".join(errors)


@contextmanager
def gateway_process(platform: Platform, **environment: str) -> Iterator[tuple[str, Path]]:
    """`kfaas gateway --backend kubernetes` as the chart's gateway ServiceAccount, once ready.

    Yields its URL and the path of its log; a traceback in the log fails the test at the end.
    """
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    env = {
        **os.environ,
        "KUBECONFIG": str(platform.token_kubeconfig(f"{RELEASE}-gateway")),
        "KFAAS_PLATFORM_NAMESPACE": platform.namespace,
        "KFAAS_ASYNC_QUEUE": "memory",
        **environment,
    }
    log_path = platform.workdir / f"gateway-{uuid.uuid4().hex[:6]}.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [str(Path(sys.executable).parent / "kfaas"), "gateway", "--backend", "kubernetes",
             "--port", str(port)],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:

        def ready() -> bool:
            assert process.poll() is None, log_path.read_text()
            with urllib.request.urlopen(f"{url}/readyz", timeout=2) as answer:
                return bool(answer.status == 200)

        eventually(
            ready, within=60, what=f"the gateway ready (log: {log_path})", ignoring=(OSError,)
        )
        yield url, log_path
    finally:
        process.terminate()
        process.wait(timeout=20)
    errors = [line for line in log_path.read_text().splitlines() if "Traceback" in line]
    assert not errors, log_path.read_text()
