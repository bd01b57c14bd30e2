"""NetworkPolicies enforced on the real node: kube-router's firewall as a host process.

The CNI bridge does not enforce NetworkPolicies; kube-router's network policy controller
(`--run-firewall` alone, no routing, no service proxy) does, with iptables chains and ipsets in the
host's filter table: traffic between pods on the bridge reaches them because the kernel passes
bridged packets through iptables (`net.bridge.bridge-nf-call-iptables=1`). It reads the node's
address from the Node object named by `--hostname-override` and judges the pods running there.
Traffic from the host itself to a pod is always let through (kube-router's rule for kubelet
probes), so tests that must see a policy bite connect from a pod.

kube-router leaves its chains and sets behind when it stops, and its `--cleanup-config` does not
clean the firewall in v2.1.0 (it builds an empty controller); `down()` removes them itself —
`cleanup_commands` works out which, from `iptables-save` and `ipset list -n` — so the host is as
before. One enforcer per machine: the filter table is global, so `up()` holds a machine-wide lock.
"""

from __future__ import annotations

import fcntl
import re
import shlex
import subprocess
from pathlib import Path
from typing import IO

from services.addons_build import KUBE_ROUTER
from services.base import ServiceDir, ServiceError, cache_root, progress
from services.processes import launch, running_pid, stop, wait_until

CHAIN_PREFIXES = ("KUBE-ROUTER-", "KUBE-POD-FW-", "KUBE-NWPLCY-")
# Its sets: KUBE-SRC-/KUBE-DST- and, mid-update, TMP-, each with 16 base32 characters.
IPSET_NAME = re.compile(r"(?:inet6:)?(?:KUBE-SRC-|KUBE-DST-|TMP-)[A-Z2-7]{16}")
BUILTIN = ("INPUT", "FORWARD", "OUTPUT")


def cleanup_commands(filter_table: str, ipsets: list[str]) -> list[list[str]]:
    """The iptables and ipset commands that remove kube-router's firewall and nothing else.

    `filter_table` is `iptables-save -t filter`; the jumps from the built-in chains go first, then
    its chains are flushed (they refer to each other) and deleted, then its sets are destroyed
    (the kernel refuses to destroy a set a rule still uses).
    """
    jumps: list[list[str]] = []
    chains: list[str] = []
    for line in filter_table.splitlines():
        if line.startswith(":"):
            name = line[1:].split(" ", 1)[0]
            if name.startswith(CHAIN_PREFIXES):
                chains.append(name)
        elif line.startswith("-A ") and line.split(" ", 2)[1] in BUILTIN:
            words = shlex.split(line)
            target = words[words.index("-j") + 1] if "-j" in words else ""
            if target.startswith(CHAIN_PREFIXES):
                jumps.append(["iptables", "-w", "-t", "filter", "-D", words[1], *words[2:]])
    commands = jumps
    commands += [["iptables", "-w", "-t", "filter", "-F", chain] for chain in chains]
    commands += [["iptables", "-w", "-t", "filter", "-X", chain] for chain in chains]
    commands += [["ipset", "destroy", name] for name in ipsets if IPSET_NAME.fullmatch(name)]
    return commands


def leftovers() -> list[str]:
    """What is left of kube-router's firewall on the host, as the commands that would undo it."""
    return [shlex.join(command) for command in cleanup_commands(*_host_state())]


def _host_state() -> tuple[str, list[str]]:
    table = _output(["iptables-save", "-t", "filter"])
    sets = _output(["ipset", "list", "-n"]).split()
    return table, sets


def _output(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise ServiceError(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()}")
    return done.stdout


def remove_firewall() -> None:
    """Take kube-router's rules and sets off the host; safe to call when there are none."""
    for command in cleanup_commands(*_host_state()):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServiceError(
                f"could not undo kube-router's firewall: {shlex.join(command)}: "
                f"{done.stderr.strip()}"
            )


class NetworkPolicyEnforcer:
    """kube-router's network policy controller for the one real node: `.up()`, `.down()`."""

    name = "network-policy"

    def __init__(
        self, state_dir: Path, *, kubeconfig: Path, node_name: str, service_range: str
    ) -> None:
        self.dir = ServiceDir(state_dir, self.name)
        self.kubeconfig = kubeconfig
        self.node_name = node_name
        self.service_range = service_range
        self._lock: IO[str] | None = None

    @staticmethod
    def build() -> None:
        KUBE_ROUTER.build()

    @property
    def log_path(self) -> Path:
        return self.dir.log_file("kube-router")

    def running(self) -> bool:
        return running_pid(self.dir.pid_file("kube-router")) is not None

    def up(self) -> None:
        binary = KUBE_ROUTER.build()
        self._take_machine_lock()
        if self.running():
            return
        remove_firewall()  # what a killed run left behind
        self.dir.create()
        argv = [
            str(binary),
            f"--kubeconfig={self.kubeconfig}",
            f"--hostname-override={self.node_name}",
            "--run-firewall=true",
            "--run-router=false",
            "--run-service-proxy=false",
            "--enable-cni=false",
            "--enable-ibgp=false",
            "--enable-pod-egress=false",
            f"--service-cluster-ip-range={self.service_range}",
            "--health-port=0",  # no listener on the host's addresses (readiness: the chains)
            "--metrics-port=0",
            "--v=1",
        ]
        pid = launch(argv, pid_file=self.dir.pid_file("kube-router"), log_file=self.log_path)
        progress(f"kube-router's firewall for node {self.node_name} (log {self.log_path})")
        wait_until(
            self._enforcing,
            what="kube-router",
            timeout=60,
            pid=pid,
            log_file=self.log_path,
            interval=0.2,
        )

    def _enforcing(self) -> bool:
        """Its top-level chains are hooked into the filter table and a first sync is done."""
        table = _output(["iptables-save", "-t", "filter"])
        hooked = all(f"-j KUBE-ROUTER-{chain}" in table for chain in BUILTIN)
        return hooked and "KUBE-NWPLCY-DEFAULT" in table

    def down(self) -> None:
        try:
            stop(self.dir.pid_file("kube-router"))
            remove_firewall()
        finally:
            self._release_machine_lock()

    def _take_machine_lock(self) -> None:
        if self._lock is not None:
            return
        root = cache_root()
        root.mkdir(parents=True, exist_ok=True)
        lock = (root / "network-policy-enforcer.lock").open("w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise ServiceError(
                "another kube-router firewall runs on this machine (lock "
                f"{root / 'network-policy-enforcer.lock'}): the filter table is machine-wide"
            ) from None
        self._lock = lock

    def _release_machine_lock(self) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None
