"""What the real node changes on the host, and how every change is undone.

A kubelet, containerd, the CNI plugins and kube-proxy work on fixed host paths and host-wide kernel
state: iptables chains, sysctls, cgroups, network namespaces, `/var/lib/kubelet`, `/var/lib/cni`.
So one real node runs per machine (a lock in `/run/kfaas-node/`, gone at reboot like everything it
guards), the first `up` records the host as it was (`before.json` there), and `restore` puts it
back: containers killed through runc, mounts and network namespaces removed, cgroups deleted,
the chains the node's programs made (KUBE-*, CNI-*, KFAAS-*) flushed and deleted with the jumps to
them, sysctls set back, host folders that did not exist before deleted, the bridge deleted.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

from services.base import MissingDependency, ServiceError, file_lock, progress
from services.node_config import BRIDGE, BRIDGE_ADDRESS, CNI_BIN, CNI_NETWORK, POD_RANGE

MACHINE_DIR = Path("/run/kfaas-node")
OWNER = MACHINE_DIR / "owner.json"
BEFORE = MACHINE_DIR / "before.json"
FORWARD_CHAIN = "KFAAS-NODE-FORWARD"
OUR_CHAINS = ("KUBE-", "CNI-", "KFAAS-")
TABLES = ("filter", "nat", "mangle", "raw")
# What the kubelet and kube-proxy are known to set (kubelet: its "kernel defaults").
SYSCTLS = (
    "vm.overcommit_memory",
    "vm.panic_on_oom",
    "kernel.panic",
    "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys",
    "kernel.keys.root_maxbytes",
    "net.ipv4.ip_forward",
    "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables",
    "net.bridge.bridge-nf-call-ip6tables",
)
# Fixed host paths the node's programs create whatever they are told. Not /etc/cni: the node
# uses a private CNI config folder, and buildah keeps its own network config there.
HOST_PATHS = (
    "/var/lib/kubelet",
    "/var/log/containers",
    "/var/log/pods",
    "/var/lib/cni",
    "/run/netns",
    "/run/containerd",
    "/opt/containerd",
    "/usr/libexec/kubernetes",
    "/etc/kubernetes",
)
# Where the node's mounts appear (besides its own folder): pod network namespaces, kubelet dirs.
MOUNT_PREFIXES = ("/var/lib/kubelet", "/run/netns", "/run/containerd", "/var/lib/containerd")
TOOLS = ("containerd", "containerd-shim-runc-v2", "runc", "ctr", "iptables", "ip6tables", "ip")


def check_machine() -> None:
    """MissingDependency, with the reason, where a real node cannot run here."""
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    missing += [f"{CNI_BIN}/{plugin}" for plugin in ("bridge", "host-local", "portmap", "loopback")
                if not (CNI_BIN / plugin).exists()]  # fmt: skip
    if missing:
        raise MissingDependency(
            f"the real node needs {', '.join(missing)} (scripts/setup installs containerd, runc, "
            "containernetworking-plugins and iptables)"
        )
    if os.geteuid() != 0:
        raise MissingDependency("the real node needs root (containerd, CNI and iptables)")
    if (
        not Path("/sys/fs/cgroup/memory").is_dir()
        and not Path("/sys/fs/cgroup/cgroup.controllers").exists()
    ):
        raise MissingDependency("the real node needs cgroups (/sys/fs/cgroup has none mounted)")


def machine_lock(name: str = "lock") -> AbstractContextManager[None]:
    """Held while a node starts or stops: two at once would fight over the same host state.
    ("import.lock": one image import at a time, as containerd refuses a second of the same.)"""
    return file_lock(MACHINE_DIR / name)


def owner() -> dict[str, str] | None:
    """The node that owns the host's changes: its service folder and runc root."""
    try:
        recorded: dict[str, str] = json.loads(OWNER.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return recorded


def claim(root: Path, runc_root: Path, containerd_socket: Path) -> None:
    OWNER.write_text(
        json.dumps(
            {"root": str(root), "runc_root": str(runc_root), "socket": str(containerd_socket)}
        )
    )


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def read_sysctls() -> dict[str, str]:
    values = {}
    for name in SYSCTLS:
        with suppress(OSError):
            values[name] = _sysctl_path(name).read_text().strip()
    return values


def _rules(family: str) -> list[str]:
    """The host's rules without counters and comments, to compare before and after."""
    if shutil.which(f"{family}-save") is None:
        return []
    dump = _run(f"{family}-save", check=False).stdout
    rules: list[str] = []
    for table in re.split(r"^(?=\*)", dump, flags=re.MULTILINE):
        lines = [
            re.sub(r" \[\d+:\d+\]$", "", line)
            for line in table.splitlines()
            if line and not line.startswith("#")
        ]
        # A table with only its built-in chains, all accepting, is as good as no table (the
        # nf_tables backend keeps such a table once something created it).
        if any(line.startswith("-") or (line.startswith(":") and not line.endswith(" ACCEPT"))
               for line in lines):  # fmt: skip
            rules += lines
    return rules


def host_state() -> dict[str, Any]:
    """What the node may change on the host, as plain data (`before.json`, tests compare it)."""
    links = _run("ip", "-o", "link", "show", check=False).stdout.splitlines()
    return {
        "sysctls": read_sysctls(),
        "paths": [path for path in HOST_PATHS if os.path.lexists(path)],
        "iptables": _rules("iptables"),
        "ip6tables": _rules("ip6tables"),
        "links": sorted(line.split(":")[1].strip().split("@")[0] for line in links),
        "mounts": sorted({mount for mount in _mounts() if mount.startswith(MOUNT_PREFIXES)}),
        "cgroups": sorted(
            str(path)
            for pattern in ("*/kubepods", "*/k8s.io", "kubepods")
            for path in Path("/sys/fs/cgroup").glob(pattern)
        ),
    }


def recorded_before() -> dict[str, Any] | None:
    try:
        before: dict[str, Any] = json.loads(BEFORE.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return before


def record_before() -> None:
    """The host as it is, unless already recorded by a node whose changes are not undone yet."""
    if not BEFORE.exists():
        BEFORE.write_text(json.dumps(host_state(), indent=2))


def _run(*argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(argv, capture_output=True, text=True)
    if check and done.returncode != 0:
        raise ServiceError(f"{shlex.join(argv)} failed: {done.stderr.strip()}")
    return done


def prepare_network() -> None:
    """The bridge (the kubelet binds its address) and the rule that keeps pods on the machine."""
    if _run("ip", "link", "show", BRIDGE, check=False).returncode != 0:
        _run("ip", "link", "add", BRIDGE, "type", "bridge")
    _run("ip", "addr", "replace", f"{BRIDGE_ADDRESS}/16", "dev", BRIDGE)
    _run("ip", "link", "set", BRIDGE, "up")
    _run("iptables", "-N", FORWARD_CHAIN, check=False)
    _run("iptables", "-F", FORWARD_CHAIN)
    # Pod traffic may go to pods (and, through INPUT, to the bridge address); nothing else.
    _run("iptables", "-A", FORWARD_CHAIN, "-s", POD_RANGE, "!", "-d", POD_RANGE, "-j", "DROP")
    _run("iptables", "-A", FORWARD_CHAIN, "-d", POD_RANGE, "!", "-i", BRIDGE, "-j", "DROP")
    if _run("iptables", "-C", "FORWARD", "-j", FORWARD_CHAIN, check=False).returncode != 0:
        _run("iptables", "-I", "FORWARD", "1", "-j", FORWARD_CHAIN)


def cleanup_script(table: str, dump: str) -> str | None:
    """An `iptables-restore --noflush` script removing the node's chains from one table's dump
    (`iptables-save -t table`): the jumps to them from other chains, then the chains; None when
    the table has none."""
    ours = [
        line.split()[0][1:]
        for line in dump.splitlines()
        if line.startswith(":") and line[1:].startswith(OUR_CHAINS)
    ]
    jumps = []
    for line in dump.splitlines():
        if not line.startswith("-A "):
            continue
        words = shlex.split(line)
        if words[1].startswith(OUR_CHAINS):
            continue  # flushed with its chain
        targets = [words[i + 1] for i, word in enumerate(words[:-1]) if word in ("-j", "-g")]
        if any(target.startswith(OUR_CHAINS) for target in targets):
            jumps.append("-D " + line[3:])
    if not ours and not jumps:
        return None
    lines = [f"*{table}", *jumps, *(f"-F {c}" for c in ours), *(f"-X {c}" for c in ours)]
    return "\n".join([*lines, "COMMIT", ""])


def _iptables_cleanup(family: str) -> None:
    save, restore = f"{family}-save", f"{family}-restore"
    if shutil.which(save) is None:
        return
    for table in TABLES:
        script = cleanup_script(table, _run(save, "-t", table, check=False).stdout)
        if script is None:
            continue
        done = subprocess.run([restore, "--noflush"], input=script, capture_output=True, text=True)
        if done.returncode != 0:
            raise ServiceError(f"{restore} could not remove the node's rules: {done.stderr}")


def _kill_containers(runc_root: Path, socket: str) -> None:
    deletions = []
    for namespace_root in sorted(runc_root.glob("*")) if runc_root.is_dir() else []:
        listed = _run("runc", "--root", str(namespace_root), "list", "-q", check=False).stdout
        deletions += [
            ("runc", "--root", str(namespace_root), "delete", "--force", container)
            for container in listed.split()
        ]
    # Several at once: a node with a release installed has dozens, each a few hundred ms.
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda argv: _run(*argv, check=False), deletions))
    # The shims of this containerd (found by its socket on their command line) go last.
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and socket.encode() in argv:
            with suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def _mounts() -> list[str]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        # The mount point is the 5th field, with spaces and such escaped as octal.
        mounts.append(line.split()[4].encode().decode("unicode_escape"))
    return mounts


def _unmount_under(prefixes: list[str]) -> None:
    for _ in range(5):  # a self bind-mount is listed once per layer
        targets = [
            mount
            for mount in _mounts()
            if any(mount == p or mount.startswith(p.rstrip("/") + "/") for p in prefixes)
        ]
        if not targets:
            return
        for target in sorted(set(targets), key=len, reverse=True):
            _run("umount", "-l", target, check=False)


def _remove_cgroups() -> None:
    roots = [Path("/sys/fs/cgroup")]
    roots += [path for path in Path("/sys/fs/cgroup").iterdir() if path.is_dir()]
    for root in roots:
        for name in ("kubepods", "k8s.io", "kubepods.slice"):
            top = root / name
            if not top.is_dir():
                continue
            folders = [top, *(path for path in top.rglob("*") if path.is_dir())]
            # Whatever still runs in a pod's cgroup goes, even if runc lost track of it (its
            # state folder deleted with an old test run's temporary folder).
            for folder in folders:
                _kill_members(folder)
            # Deepest first; a cgroup goes only once its processes and children have.
            for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
                _rmdir_retrying(folder)


def _kill_members(cgroup: Path) -> None:
    try:
        pids = (cgroup / "cgroup.procs").read_text().split()
    except OSError:
        return
    for pid in pids:
        with suppress(ProcessLookupError):
            os.kill(int(pid), signal.SIGKILL)


def _rmdir_retrying(folder: Path) -> None:
    for _ in range(50):
        try:
            folder.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError:
            time.sleep(0.1)
    progress(f"could not remove cgroup {folder}")


@contextmanager
def _timed(what: str) -> Iterator[None]:
    started = time.monotonic()
    yield
    if time.monotonic() - started > 1:
        progress(f"{what} took {time.monotonic() - started:.1f} s")


def restore() -> None:
    """Undo everything a node (running or crashed) did to the host; its processes are stopped."""
    recorded = owner() or {}
    if recorded:
        with _timed("killing the containers"):
            _kill_containers(Path(recorded["runc_root"]), recorded["socket"])
    for netns in [*Path("/run/netns").glob("cni-*")] if Path("/run/netns").is_dir() else []:
        _run("umount", "-l", str(netns), check=False)
        netns.unlink(missing_ok=True)
    _unmount_under(["/var/lib/kubelet", *([recorded["root"]] if recorded else [])])
    with _timed("removing cgroups"):
        _remove_cgroups()
    _run("ip", "link", "delete", BRIDGE, check=False)
    for family in ("iptables", "ip6tables"):
        _iptables_cleanup(family)
    before = recorded_before()
    if before is None:
        # Nothing recorded: no sysctl to set back, and no host folder is known to be ours.
        before = {"sysctls": {}, "paths": list(HOST_PATHS)}
    for name, value in before["sysctls"].items():
        try:
            if _sysctl_path(name).read_text().strip() != value:
                _sysctl_path(name).write_text(value)
        except OSError as failure:
            progress(f"could not restore {name}={value}: {failure}")
    shutil.rmtree(f"/var/lib/cni/networks/{CNI_NETWORK}", ignore_errors=True)
    for path in HOST_PATHS:
        if path not in before["paths"] and os.path.lexists(path) and not os.path.ismount(path):
            shutil.rmtree(path, ignore_errors=True)
    BEFORE.unlink(missing_ok=True)
    OWNER.unlink(missing_ok=True)
