"""Scale-from-zero latency on the real node, next to a warm invoke, in one run.

For each of N functions applied at zero instances (image already in the node's containerd), the
time from sending the first invoke until its answer (the payload is a few bytes, so the answer's
first byte and last byte arrive together): the gateway holds the request, the operator scales the
Deployment from 0 to 1, the kubelet starts the pod, the runtime becomes ready, the invocation runs.
Then the same functions are invoked again, warm. Peers for comparison: Knative 2-4 s, Fission's
pool of pre-started pods 110 ms.

Needs the cluster with its real node and the chart installed as the tests install it:
`eval "$(scripts/services up cluster)"` then `.venv/bin/python bench/cold_start.py [--functions 20]`
(installs the chart into kfaas-system when it is not there).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from node.kfaas_release import Kubectl, Release, connect
from services import cluster_build

NOOP = {"app.py": "def handler(event, context):\n    return {'ok': True}\n"}


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def timed_invoke(release: Release, name: str) -> float:
    client = release.lambda_client(read_timeout=120)
    started = time.perf_counter()
    answer = client.invoke(FunctionName=release.qualified(name), Payload=b"{}")
    elapsed = time.perf_counter() - started
    body = json.loads(answer["Payload"].read())
    if "FunctionError" in answer or body != {"ok": True}:
        raise RuntimeError(f"{name} answered {answer.get('FunctionError')}: {body}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--functions", type=int, default=20, help="cold starts measured")
    options = parser.parse_args()
    kubeconfig = Path(os.environ["KUBECONFIG"])
    kubectl = Kubectl.for_kubeconfig(kubeconfig, str(cluster_build.bin_dir() / "kubectl"))
    release = connect(kubectl, kubeconfig, os.environ["KFAAS_IMAGE"])
    stamp = time.strftime("%H%M%S")
    names = [
        release.function(NOOP, name=f"cold-{stamp}-{n}", scaling={"scaleToZeroAfterSeconds": 600})
        for n in range(options.functions)
    ]
    for name in names:
        if release.running_pods(name):
            raise RuntimeError(f"{name} has pods before its first invoke")
    cold: list[float] = []
    warm: list[float] = []
    for name in names:
        cold.append(timed_invoke(release, name))
        warm += [timed_invoke(release, name) for _ in range(5)]
        print(f"  cold {name}: {cold[-1] * 1000:.0f} ms", file=sys.stderr)
        # Its pod goes, so twenty functions fit on a 2-CPU node one after the other.
        kubectl("-n", release.namespace, "delete", "function", name, "--wait=false")
    print(f"\n{datetime.now(UTC):%Y-%m-%d}, {platform.node()} ({os.cpu_count()} vCPU), "
          f"Kubernetes node: kubelet + containerd on this machine\n")  # fmt: skip
    print("| invoke | n | p50 ms | p90 ms | min ms | max ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for label, values in (("cold (0 → 1 pod)", cold), ("warm", warm)):
        print(
            f"| {label} | {len(values)} | {statistics.median(values) * 1000:.0f} | "
            f"{percentile(values, 0.9) * 1000:.0f} | {min(values) * 1000:.0f} | "
            f"{max(values) * 1000:.0f} |"
        )
    ratio = statistics.median(cold) / statistics.median(warm)
    print(f"\ncold p50 is {ratio:.0f} times warm p50")


if __name__ == "__main__":
    main()
