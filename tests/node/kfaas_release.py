"""The chart installed on the real node exactly as docs/install.md says, and clients for it.

Only the image values differ from the documented commands: the image is the one built here
(`localhost/kfaas:<hash>`, already in the node's containerd, so `pullPolicy: Never`) and the
platform Redis is a redis-server on the node's bridge address, where pods reach it. The gateway's
Services are called from the host by their ClusterIP (kube-proxy's rules apply to the host's own
traffic), as an in-cluster client would.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import subprocess
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "kfaas"
RELEASE = "kfaas"
PLATFORM_NAMESPACE = "kfaas-system"
USER = "e2e-caller"


class Kubectl:
    """What the release needs of the cluster service: kubectl against it."""

    def __init__(self, run: Callable[..., subprocess.CompletedProcess[str]]) -> None:
        self._run = run

    @classmethod
    def for_kubeconfig(cls, kubeconfig: Path, executable: str = "kubectl") -> Kubectl:
        def run(
            *args: str, input: str | None = None, check: bool = True
        ) -> subprocess.CompletedProcess[str]:
            argv = [executable, f"--kubeconfig={kubeconfig}", *args]
            done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=120)
            if check and done.returncode != 0:
                raise AssertionError(f"kubectl {' '.join(args)} failed:\n{done.stderr}")
            return done

        return cls(run)

    def __call__(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return self._run(*args, input=input, check=check).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self._run(*args, "-o", "json").stdout)


@dataclass
class Release:
    kubectl: Kubectl
    image: str
    access_key: str
    secret_key: str
    namespace: str = "e2e"
    _clients: dict[str, Any] = field(default_factory=dict)

    # -- where things are -------------------------------------------------------------------------

    def service_url(self, name: str) -> str:
        """http://CLUSTER-IP:PORT of a Service of the release (its first port)."""
        found = self.kubectl.json("-n", PLATFORM_NAMESPACE, "get", "svc", name)
        return f"http://{found['spec']['clusterIP']}:{found['spec']['ports'][0]['port']}"

    @property
    def gateway(self) -> str:
        return self.service_url(f"{RELEASE}-gateway")

    @property
    def triggers(self) -> str:
        return self.service_url(f"{RELEASE}-gateway-triggers")

    def lambda_client(self, *, read_timeout: float = 70, retries: int = 0) -> Any:
        """boto3's Lambda client on the gateway Service, signing with the e2e caller's key."""
        key = f"{read_timeout}-{retries}"
        if key not in self._clients:
            self._clients[key] = boto3.client(
                "lambda",
                endpoint_url=self.gateway,
                region_name="us-east-1",
                aws_access_key_id=self.access_key,
                aws_secret_access_key=self.secret_key,
                config=Config(
                    read_timeout=read_timeout, retries={"total_max_attempts": 1 + retries}
                ),
            )
        return self._clients[key]

    def allow_deploys(self) -> None:
        """Bind the chart's deployer role to the e2e caller in the test namespace (idempotent):
        the management API's writes (CreateFunction, PublishVersion, …) need it."""
        self.kubectl(
            "-n", self.namespace, "create", "rolebinding", "e2e-deploys",
            f"--clusterrole={RELEASE}-deployer", f"--user={USER}", check=False,
        )  # fmt: skip

    def aws_environment(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": "us-east-1",
        }

    def deployed_image(self) -> str:
        found = self.kubectl(
            "-n", PLATFORM_NAMESPACE, "get", "deploy", f"{RELEASE}-gateway",
            "-o", "jsonpath={.spec.template.spec.containers[0].image}", check=False,
        )  # fmt: skip
        return found.strip()

    # -- functions ------------------------------------------------------------------------------

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-f", "-", input=json.dumps(manifest))

    def function(
        self,
        inline: dict[str, str] | None = None,
        *,
        name: str = "",
        ready: bool = True,
        **spec: Any,
    ) -> str:
        """Apply a Function in the e2e namespace and wait for Ready; its name.

        ``inline`` is the code as `code.inline`; any other spec field goes as given (camelCase).
        """
        name = name or f"fn-{uuid.uuid4().hex[:8]}"
        body: dict[str, Any] = {"runtime": "python3.11", "handler": "app.handler", **spec}
        if inline is not None:
            body["code"] = {"inline": inline}
        self.apply({
            "apiVersion": "kfaas.dev/v1alpha1", "kind": "Function",
            "metadata": {"name": name, "namespace": self.namespace}, "spec": body,
        })  # fmt: skip
        if ready:
            self.wait_ready(name)
        return name

    def wait_ready(self, name: str, timeout: float = 120) -> None:
        self.kubectl("-n", self.namespace, "wait", "--for=condition=Ready", f"--timeout={timeout}s",
                     f"function/{name}")  # fmt: skip

    def qualified(self, name: str) -> str:
        return f"{self.namespace}/{name}"

    def pods(self, name: str, component: str = "runtime") -> list[dict[str, Any]]:
        """The function's pods (``component="poller"``: its mappings' poller pods)."""
        found = self.kubectl.json(
            "-n", self.namespace, "get", "pods",
            "-l", f"kfaas.dev/function={name},kfaas.dev/component={component}",
        )  # fmt: skip
        return list(found["items"])

    def running_pods(self, name: str, component: str = "runtime") -> list[dict[str, Any]]:
        return [
            pod for pod in self.pods(name, component)
            if pod["status"].get("phase") == "Running"
            and not pod["metadata"].get("deletionTimestamp")
        ]  # fmt: skip


def install(
    kubectl: Kubectl, kubeconfig: Path, helm: Path, image: str, redis_url: str, *values: str
) -> Release:
    """`helm install` as docs/install.md shows, then its SigV4 key and RoleBinding steps."""
    repository, _, tag = image.rpartition(":")
    argv = [str(helm), "install", RELEASE, str(CHART), "--namespace", PLATFORM_NAMESPACE,
            "--create-namespace",
            "--set", f"image.repository={repository}", "--set", f"image.tag={tag}",
            "--set", "image.pullPolicy=Never", "--set", f"redis.url={redis_url}",
            "--wait", "--timeout=5m"]  # fmt: skip
    for value in values:
        argv += ["--set", value]
    done = subprocess.run(
        argv, capture_output=True, text=True, timeout=330,
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
    )  # fmt: skip
    if done.returncode != 0:
        raise AssertionError(f"helm install failed:\n{done.stdout}\n{done.stderr}")
    access_key = "AKID" + secrets.token_hex(8).upper()
    secret_key = secrets.token_hex(20)
    kubectl("-n", PLATFORM_NAMESPACE, "create", "secret", "generic", "e2e-key",
            f"--from-literal=accessKeyId={access_key}",
            f"--from-literal=secretAccessKey={secret_key}",
            f"--from-literal=user={USER}")  # fmt: skip
    kubectl("-n", PLATFORM_NAMESPACE, "label", "secret", "e2e-key", "kfaas.dev/credentials=true")
    release = Release(kubectl, image, access_key, secret_key)
    kubectl("create", "namespace", release.namespace)
    kubectl("-n", release.namespace, "create", "rolebinding", "e2e-invokes",
            "--clusterrole=kfaas-invoker", f"--user={USER}")  # fmt: skip
    return release


def installed(kubectl: Kubectl, image: str) -> Release | None:
    """The release a previous `install` left on this cluster, with its caller's key; or None."""
    found = kubectl("-n", PLATFORM_NAMESPACE, "get", "secret", "e2e-key", "-o", "json",
                    check=False)  # fmt: skip
    if not found:
        return None
    data = json.loads(found)["data"]
    return Release(
        kubectl,
        image,
        base64.b64decode(data["accessKeyId"]).decode(),
        base64.b64decode(data["secretAccessKey"]).decode(),
    )


def connect(kubectl: Kubectl, kubeconfig: Path, image: str) -> Release:
    """The installed release (bench/, a reused cluster), installing it when there is none."""
    release = installed(kubectl, image)
    if release is not None:
        return release
    from chart import helm_build  # only needed for a first install

    redis_url = os.environ.get("KFAAS_POD_REDIS_URL")
    if not redis_url:
        # A Redis on the node's bridge address, beside the node `scripts/services up` started.
        from services.base import default_state_dir
        from services.node_config import BRIDGE_ADDRESS
        from services.redis_server import PodRedis

        pod_redis = PodRedis(default_state_dir(), BRIDGE_ADDRESS)
        pod_redis.up()
        redis_url = pod_redis.url
    return install(kubectl, kubeconfig, helm_build.build(), image, redis_url)
