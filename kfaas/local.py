"""The local instance backend: runtime instances as processes on this machine, for ``kfaas dev``.

It implements the ``InstanceBackend`` seam with the same pure scaling rule the operator uses:
demand reported by the gateway is sampled every tick, ``desired_instances`` says how many instances
each function should have, and this class starts or stops processes to match. A function with no
instance and waiting demand gets one at once (scale from zero, the request is held by the gateway).

Instances are forked from a pre-imported fork server (see ``forkserver.py``), so a cold start does
not pay for interpreter start-up and imports. A change of spec or code starts instances of
the new generation; instances of the old one are stopped once a new one is ready.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from kfaas import aiokit, config, runtimetoken
from kfaas.backends import Endpoint, EndpointsListener
from kfaas.code import code_digest, write_inline
from kfaas.forkserver import ForkServer
from kfaas.interpreters import Interpreter, Interpreters
from kfaas.manifests import Function
from kfaas.runtimeenv import runtime_environment
from kfaas.scaling import ScalingPolicy, ScalingState, desired_instances, record

log = logging.getLogger("kfaas.local")

PASSED_ENVIRONMENT = ("PATH", "LANG", "HOME", "TMPDIR", "LD_LIBRARY_PATH", "PYTHONPATH")
READY_TIMEOUT_SECONDS = 60.0
# An instance that failed to start waits 1, 2, 4 … at most 30 s before the next is forked, so that
# a function that cannot start does not fork in a tight loop.
START_BACKOFF = aiokit.Backoff(first=1.0, most=30.0)
# Imported once by the fork server so that a new instance starts with them already loaded.
RUNTIME_MODULES = [
    "kfaas.runtime.config",
    "kfaas.runtime.startup",
    "kfaas.runtime.server",
    "uvloop",
    "ctypes",  # the runtime's prctl(PR_SET_DUMPABLE) (ADR 011): ~2 ms less per cold start
]
# Another interpreter sees kfaas alone (kfaas.interpreters), without this one's uvloop.
FOREIGN_RUNTIME_MODULES = [module for module in RUNTIME_MODULES if module != "uvloop"]
# Where a function's code is on this machine, when the backend cannot know it from the spec alone
# (`code.zip`: kfaas dev's code store unpacks it); None leaves `code.path`/`code.inline` to it.
CodeRoots = Callable[[Function], Awaitable[Path | None]]
# A Function's `envFrom` as variables; raises (naming the missing source) to fail the start.
EnvFrom = Callable[[Function], Mapping[str, str]]


@dataclass
class LocalInstance:
    instance_id: str
    generation: str
    started_at: float
    pid: int | None = None
    port: int | None = None
    ready: bool = False
    # One of the function's `concurrency.provisioned` instances (AWS_LAMBDA_INITIALIZATION_TYPE).
    provisioned: bool = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@dataclass
class LocalFunction:
    function: Function
    generation: str
    policy: ScalingPolicy
    state: ScalingState = field(default_factory=ScalingState)
    instances: dict[str, LocalInstance] = field(default_factory=dict)
    failures: int = 0
    retry_after: float = 0.0


def generation_of(function: Function) -> str:
    """Changes exactly when an instance of the function must be replaced."""
    spec = function.spec.model_dump_json(by_alias=True, exclude={"scaling", "concurrency"})
    per_instance = str(function.spec.concurrency.per_instance)
    return hashlib.sha256((spec + per_instance + code_digest(function)).encode()).hexdigest()[:16]


class LocalBackend:
    def __init__(
        self,
        *,
        state_dir: Path,
        region: str = "us-east-1",
        use_fork_server: bool = True,
        tick_seconds: float = 0.5,
        stable_window_seconds: float = 60.0,
        extra_environment: dict[str, str] | None = None,
        runtime_token_key: str | None = None,
        host_environment: Mapping[str, str] | None = None,
        code_roots: CodeRoots | None = None,
        env_from: EnvFrom | None = None,
    ) -> None:
        self.state_dir = state_dir
        self.code_roots = code_roots
        # The variables a Function's `envFrom` gives (kfaas dev: its Secret and ConfigMap
        # documents); without it `envFrom` is left to a cluster's kubelet.
        self.env_from = env_from
        # What instances inherit of this process's environment comes from this one copy.
        self.host_environment = dict(
            config.host_environment() if host_environment is None else host_environment
        )
        self.region = region
        self.tick_seconds = tick_seconds
        self.stable_window_seconds = stable_window_seconds
        self.extra_environment = extra_environment or {}
        self._fork_server = ForkServer(RUNTIME_MODULES) if use_fork_server else None
        # The interpreter of each runtime (ADR 016): instances of this Python's runtime fork from
        # the fork server above, those of another Python from one of their own, started on use.
        self.interpreters = Interpreters(state_dir, environment=self.host_environment)
        self._foreign_servers: dict[str, ForkServer] = {}
        self._foreign_lock = asyncio.Lock()
        self._functions: dict[str, LocalFunction] = {}
        self._demand: dict[str, int] = {}
        self._listeners: list[EndpointsListener] = []
        self._by_pid: dict[int, tuple[str, str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        # A new platform key each start (ADR 011), unless one is given (benchmarks calling an
        # instance directly): instances of an earlier run are not reachable with this run's tokens.
        self._token_key = runtime_token_key or runtimetoken.new_key()

    # -- the InstanceBackend seam ---------------------------------------------------------

    def subscribe(self, listener: EndpointsListener) -> None:
        self._listeners.append(listener)

    def demand(self, function_key: str, concurrency: int) -> None:
        self._demand[function_key] = concurrency
        local = self._functions.get(function_key)
        if concurrency > 0 and local is not None and not local.instances:
            self._reconcile(function_key, time.monotonic())

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self._fork_server is not None:
            self._fork_server.on_exit(self._exited)
            await self._fork_server.start()
        # Without the scaler no instance starts or stops: if it ever ends, so does the process.
        self._ticker = aiokit.guarded_task(
            "kfaas-local-scaler",
            self._tick_forever,
            log=log,
            on_return="fatal",
            on_fatal=aiokit.exit_process(log, status=70),
        )

    async def stop(self) -> None:
        ticker = [self._ticker] if self._ticker is not None else []
        await aiokit.stop_tasks([*ticker, *self._tasks], grace_seconds=0)
        for local in self._functions.values():
            for instance in list(local.instances.values()):
                self._terminate(instance)
        for process in list(self._processes.values()):
            await aiokit.wait_event(process.wait(), 5)
        if self._fork_server is not None:
            await self._fork_server.stop()
        for server in self._foreign_servers.values():
            await server.stop()

    def set_function(self, key: str, function: Function | None) -> None:
        """Registry listener: a function was added, changed or removed."""
        local = self._functions.get(key)
        if function is None:
            if local is not None:
                for instance in list(local.instances.values()):
                    self._stop_instance(key, instance)
                del self._functions[key]
                self._publish(key)
            return
        generation = generation_of(function)
        policy = dataclasses.replace(
            ScalingPolicy.from_spec(function.spec),
            stable_window_seconds=self.stable_window_seconds,
        )
        if local is None:
            local = LocalFunction(function, generation, policy)
            self._functions[key] = local
        else:
            # The same generation again (a status write, a tag): keep the start backoff.
            if generation != local.generation:
                local.failures = 0
            local.function, local.generation, local.policy = function, generation, policy
        self._reconcile(key, time.monotonic())

    def instances(self, key: str) -> list[LocalInstance]:
        local = self._functions.get(key)
        return list(local.instances.values()) if local else []

    # -- scaling --------------------------------------------------------------------------

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(self.tick_seconds)
            now = time.monotonic()
            for key in list(self._functions):
                self._reconcile(key, now)

    def _reconcile(self, key: str, now: float) -> None:
        local = self._functions[key]
        record(local.state, now, self._demand.get(key, 0))
        current = [i for i in local.instances.values() if i.generation == local.generation]
        stale = [i for i in local.instances.values() if i.generation != local.generation]
        desired = desired_instances(local.policy, local.state, now, len(current))
        # The first instances kept are the provisioned ones; a missing one (it exited, or
        # `provisioned` grew) is started even when on-demand ones already make up the number,
        # which are then stopped first.
        missing = provisioned_missing(local.function, current)
        if (desired > len(current) or missing) and now >= local.retry_after:
            for index in range(max(desired - len(current), missing)):
                self._launch(key, local, provisioned=index < missing)
        elif desired < len(current):
            # On-demand before provisioned, not-ready before ready, newest last.
            idle_first = sorted(current, key=lambda i: (i.provisioned, i.ready, i.started_at))
            for instance in idle_first[: len(current) - desired]:
                self._stop_instance(key, instance)
        if stale and (desired == 0 or any(i.ready for i in current)):
            for instance in stale:
                self._stop_instance(key, instance)

    # -- instances ------------------------------------------------------------------------

    def _launch(self, key: str, local: LocalFunction, *, provisioned: bool = False) -> None:
        instance = LocalInstance(
            uuid.uuid4().hex[:12], local.generation, time.monotonic(), provisioned=provisioned
        )
        local.instances[instance.instance_id] = instance
        task = asyncio.create_task(
            self._start_instance(key, local.function, instance), name=f"kfaas-start-{key}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start_instance(self, key: str, function: Function, instance: LocalInstance) -> None:
        try:
            root = await self._code_root(function)
            env = self._environment(function, instance, root)
            read_fd, write_fd = os.pipe()
            try:
                interpreter = self.interpreters.require(function.spec.runtime)
                instance.pid = await self._spawn(env, write_fd, interpreter)
            finally:
                os.close(write_fd)
            self._by_pid[instance.pid] = (key, instance.instance_id)
            line = await asyncio.wait_for(_read_line(read_fd), READY_TIMEOUT_SECONDS)
            if not line:
                raise RuntimeError("the instance exited before it was ready")
            instance.port = int(json.loads(line)["port"])
        except Exception as exc:
            log.error("instance of %s failed to start: %s", key, exc)
            self._failed(key, instance)
            return
        instance.ready = True
        local = self._functions.get(key)
        if local is not None and instance.instance_id in local.instances:
            local.failures = 0
            log.info(
                "instance %s of %s ready on port %s in %.1f ms",
                instance.instance_id,
                key,
                instance.port,
                (time.monotonic() - instance.started_at) * 1000,
            )
            self._publish(key)
            self._reconcile(key, time.monotonic())

    async def _code_root(self, function: Function) -> Path:
        if self.code_roots is not None and (found := await self.code_roots(function)) is not None:
            return found
        root = function.code_root()
        if root is None:
            if function.spec.code.inline is None:
                raise RuntimeError(
                    "kfaas dev runs code.path, code.inline or code.zip (from its code store) "
                    "only, not code.image or code.configMap"
                )
            root = write_inline(function, self.state_dir / "code" / function.key)
        return root

    def _environment(
        self, function: Function, instance: LocalInstance, root: Path
    ) -> dict[str, str]:
        generation = instance.generation
        host = self.host_environment
        env = {name: host[name] for name in PASSED_ENVIRONMENT if name in host}
        env.update({name: value for name, value in host.items() if name.startswith("OTEL_")})
        env.update(self.extra_environment)
        if self.env_from is not None:
            # As in a pod: `environment` (and the platform's variables) win over `envFrom`.
            env.update(self.env_from(function))
        env.update(
            runtime_environment(
                function, task_root=str(root), region=self.region, provisioned=instance.provisioned
            )
        )
        env[runtimetoken.TOKEN_ENV] = self._token(function.key)
        env.update(
            {
                "KFAAS_RUNTIME_HOST": "127.0.0.1",
                "KFAAS_RUNTIME_PORT": "0",
                "KFAAS_RUNTIME_API_PORT": "0",
                "KFAAS_MEMORY_LIMIT": "1",
                # Bytecode apart per generation: a .pyc records its source's mtime in whole
                # seconds, so an edit within the same second would otherwise run the old code.
                "PYTHONPYCACHEPREFIX": str(self.state_dir / "pycache" / generation),
            }
        )
        return env

    async def _spawn(self, env: dict[str, str], ready_fd: int, interpreter: Interpreter) -> int:
        cwd = env["LAMBDA_TASK_ROOT"]
        server = self._fork_server
        argv = [sys.executable, "-m", "kfaas.runtime"]
        if not interpreter.own:
            env = {**env, "PYTHONPATH": _joined(interpreter.python_path, env.get("PYTHONPATH"))}
            argv = [interpreter.python, "-P", "-m", "kfaas.runtime"]
            server = await self._foreign_server(interpreter) if server is not None else None
        if server is not None:
            return await server.spawn(
                "kfaas.runtime", env=env, cwd=cwd, fd=ready_fd, fd_env="KFAAS_READY_FD"
            )
        env = {**env, "KFAAS_READY_FD": str(ready_fd)}
        process = await asyncio.create_subprocess_exec(
            *argv,
            env=env,
            cwd=cwd,
            pass_fds=(ready_fd,),
            stdin=asyncio.subprocess.DEVNULL,
            start_new_session=True,
        )
        self._processes[process.pid] = process
        waiter = asyncio.create_task(self._wait_process(process), name="kfaas-instance-wait")
        self._tasks.add(waiter)
        waiter.add_done_callback(self._tasks.discard)
        return process.pid

    async def _foreign_server(self, interpreter: Interpreter) -> ForkServer:
        """The fork server of another interpreter, started on its first instance."""
        async with self._foreign_lock:
            server = self._foreign_servers.get(interpreter.python)
            if server is None:
                host = self.host_environment
                env = {name: host[name] for name in PASSED_ENVIRONMENT if name in host}
                env["PYTHONPATH"] = _joined(interpreter.python_path, None)
                env["PYTHONPYCACHEPREFIX"] = str(self.state_dir / "pycache" / interpreter.runtime)
                server = ForkServer(FOREIGN_RUNTIME_MODULES, python=interpreter.python, env=env)
                server.on_exit(self._exited)
                await server.start()
                self._foreign_servers[interpreter.python] = server
            return server

    async def _wait_process(self, process: asyncio.subprocess.Process) -> None:
        status = await process.wait()
        self._processes.pop(process.pid, None)
        self._exited(process.pid, status)

    def _exited(self, pid: int, status: int) -> None:
        owner = self._by_pid.pop(pid, None)
        if owner is None:
            return
        key, instance_id = owner
        local = self._functions.get(key)
        instance = local.instances.get(instance_id) if local else None
        if instance is not None:
            log.warning("instance %s of %s exited with status %s", instance_id, key, status)
            self._failed(key, instance)

    def _failed(self, key: str, instance: LocalInstance) -> None:
        local = self._functions.get(key)
        if local is None or local.instances.pop(instance.instance_id, None) is None:
            return
        self._terminate(instance)
        if not instance.ready:
            local.failures += 1
            local.retry_after = time.monotonic() + START_BACKOFF.delay(local.failures)
        self._publish(key)

    def _stop_instance(self, key: str, instance: LocalInstance) -> None:
        local = self._functions.get(key)
        if local is not None:
            local.instances.pop(instance.instance_id, None)
        if instance.pid is not None:
            self._by_pid.pop(instance.pid, None)
        self._terminate(instance)
        self._publish(key)

    def _token(self, key: str) -> str:
        namespace, _, name = key.partition("/")
        return runtimetoken.derive(self._token_key, namespace, name)

    def _terminate(self, instance: LocalInstance) -> None:
        if instance.pid is None:
            return
        # Each instance leads its own process group, workers included.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(instance.pid, signal.SIGTERM)

    def _publish(self, key: str) -> None:
        local = self._functions.get(key)
        endpoints = []
        if local is not None:
            capacity = local.function.spec.concurrency.per_instance
            token = self._token(key)
            endpoints = [
                Endpoint(i.instance_id, i.url, capacity, token)
                for i in local.instances.values()
                if i.ready
            ]
        for listener in self._listeners:
            listener(key, endpoints)


def provisioned_missing(function: Function, current: list[LocalInstance]) -> int:
    """How many provisioned instances the function lacks among its current ones."""
    have = sum(1 for instance in current if instance.provisioned)
    return max(0, function.spec.concurrency.provisioned - have)


async def _read_line(fd: int) -> bytes:
    """The first line written to a pipe (empty when the writer closed it without one)."""
    reader = asyncio.StreamReader()
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(fd, "rb", buffering=0)
    )
    try:
        return await reader.readline()
    finally:
        transport.close()


def _joined(first: str | None, rest: str | None) -> str:
    return os.pathsep.join(path for path in (first, rest) if path)
