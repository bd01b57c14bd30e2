"""``kfaas dev``: the gateway, local instances and reloads, all on one machine with no cluster.

Keeps its objects and uploaded code in a state folder (``--state``, ADR 024/025), applies every
manifest under the given paths into it, serves the Lambda Invoke and management APIs and HTTP
triggers from what it holds, starts instances as local processes, and re-applies the manifests
when they or their code change (polling modification times once a second, so it needs no
file-watching library). ``cli/dev_files.py`` applies, ``cli/dev_state.py`` acts on the changes.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import signal
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TextIO

from kfaas import aiokit
from kfaas import object_store as store
from kfaas.brokers.platform_kafka import platform_security
from kfaas.code_folder import DirectoryCodeStore
from kfaas.code_store import CodeStoreError
from kfaas.config import Settings
from kfaas.dir_store import DirectoryObjectStore
from kfaas.gateway.asyncq import QueueError, parse_queue_url
from kfaas.gateway.auth_rules import CredentialsFile, dev_auth
from kfaas.gateway.listeners import METRICS, Listener
from kfaas.gateway.registry import FunctionRegistry
from kfaas.gateway.serving import compose_gateway
from kfaas.interpreters import RuntimeUnavailable
from kfaas.local import LocalBackend
from kfaas.manifests import (
    EventSourceMapping,
    Function,
    ManifestError,
    load_manifests,
)
from kfaas.pollers.group import PollerGroup
from kfaas.pollers.settings import PollerSettings
from kfaas.scheduler.settings import SchedulerSettings
from kfaas.secret_documents import SecretBook, environment_from, load_config_maps, load_secrets

from .dev_files import Snapshot, apply_manifests, snapshot, state_misplaced
from .dev_poller_status import status_stores
from .dev_schedules import DevSchedules, load_schedules, schedule_lines
from .dev_state import DevObjects
from .settings import ServerSettings

log = logging.getLogger("kfaas.dev")

WATCH_SECONDS = 1.0
# How long the files must hold still before a change is applied.
SETTLE_SECONDS = 0.25
WATCHER_RESTART = aiokit.Backoff(first=WATCH_SECONDS, most=30.0)


class DevServer:
    def __init__(
        self,
        paths: Sequence[str],
        *,
        host: str,
        port: int,
        settings: Settings,
        async_queue: str = "memory",
        out: TextIO = sys.stdout,
        listeners: Sequence[Listener] = (),
        credentials: CredentialsFile | None = None,
        poller: PollerSettings | None = None,
        state: Path | None = None,
        scheduler: SchedulerSettings | None = None,
    ) -> None:
        self.paths = list(paths)
        self.host = host
        self.port = port
        # One listener for everything unless the Invoke API and triggers are split (--listen).
        self.listeners = list(listeners) or [Listener("all", host, port)]
        self.trigger_url = ""
        self.out = out
        # Scratch for this run's instances (bytecode, inline code); the state outlives the run.
        self.state_dir = Path(tempfile.mkdtemp(prefix="kfaas-dev-"))
        self.state = state or self.state_dir / "state"
        # One process per state folder: StoreError if another kfaas dev holds it.
        try:
            self.objects = DirectoryObjectStore.open(self.state)
        except OSError as exc:  # not writable, not a folder: the user's to fix, one line
            shutil.rmtree(self.state_dir, ignore_errors=True)
            raise store.StoreError(f"cannot use the state folder {self.state}: {exc}") from exc
        self.code = DirectoryCodeStore(self.state / "code")
        self.registry = FunctionRegistry(
            default_namespace=settings.default_namespace, region=settings.region
        )
        self.backend = LocalBackend(
            state_dir=self.state_dir,
            region=settings.region,
            stable_window_seconds=settings.scaling_stable_window_seconds,
            runtime_token_key=settings.runtime_token_key,
            code_roots=self._code_root,
            env_from=self._env_from,
        )
        self.registry.subscribe(self.backend.set_function)
        # The `v1` Secrets in the files (ADR 027), read again at each reload: secured Kafka
        # sources and destinations read them at each (re)connect, as pods read the API's.
        self.secrets = SecretBook()
        self.feed = DevObjects(self.objects, self.code, self.registry, self.backend.interpreters)
        # With --auth sigv4 the in-process pollers present a token made for this run.
        self.auth, self._pollers_token = dev_auth(settings.auth, credentials)
        self.async_queue = async_queue
        self.gateway = compose_gateway(
            self.registry,
            self.backend,
            settings,
            async_queue=async_queue,
            authentication=self.auth,
            objects=self.objects,
            code_store=self.code,
            # A Kafka destination's own tls/auth Secrets: the Secret documents in the files.
            secrets=self.secrets.reader,
        )
        # The manifests last applied: their code folders are watched.
        self.manifests: list[Function | EventSourceMapping] = []
        self._watcher: asyncio.Task[None] | None = None
        self._seen: Snapshot = {}  # the files the watcher compares with
        self.settings = settings
        self.poller_settings = poller or PollerSettings()
        # Stream pollers for the mappings found, started once the gateway's URL is known.
        self.pollers: PollerGroup | None = None
        # The Schedules' engine (ADR 026), started once the gateway's URL is known.
        self.scheduler_settings = scheduler or SchedulerSettings()
        self.schedules: DevSchedules | None = None
        self._mapping_lines: list[str] = []
        self._schedule_lines: list[str] = []

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def check_runtimes(self, manifests: Iterable[Function | EventSourceMapping]) -> None:
        """Raise RuntimeUnavailable for functions whose runtime no interpreter here runs."""
        problems = []
        for manifest in manifests:
            if isinstance(manifest, Function):
                found = self.backend.interpreters.resolve(manifest.spec.runtime)
                if isinstance(found, str):
                    problems.append(f"Function {manifest.key}: {found}")
        if problems:
            raise RuntimeUnavailable(problems)

    def check_state(self, manifests: Iterable[Function | EventSourceMapping]) -> None:
        """Raise StoreError if the state folder lies where its files would be read as input."""
        problem = state_misplaced(self.state, self.paths, manifests)
        if problem is not None:
            raise store.StoreError(problem)

    async def _run_mappings(self, mappings: list[EventSourceMapping]) -> dict[str, str]:
        """The pollers run exactly these mappings; why any could not start, by key."""
        assert self.pollers is not None  # started before the feed's tasks
        await self.pollers.update(mappings)
        return dict(self.pollers.refused)

    def _env_from(self, function: Function) -> dict[str, str]:
        """A Function's `envFrom` from the Secret and ConfigMap documents in the files."""
        return environment_from(function.spec.env_from, function.metadata.namespace, self.secrets)

    async def _code_root(self, function: Function) -> Path | None:
        return await self.feed.code_root(function)

    def _code_folders(self) -> list[Function]:
        return [manifest for manifest in self.manifests if isinstance(manifest, Function)]

    async def start(self) -> None:
        manifests = load_manifests(self.paths)
        schedules = load_schedules(self.paths)
        self.secrets.replace(load_secrets(self.paths), load_config_maps(self.paths))
        self.check_runtimes(manifests)
        self.check_state(manifests)
        await apply_manifests(self.objects, self.code, [*manifests, *schedules])
        self.manifests = manifests
        await self.feed.collect_garbage()
        await self.backend.start()
        # From here on every write reaches the registry, instances and pollers: before serving,
        # so that no write through the API can come in between.
        self.objects.subscribe(self.feed.changed)
        await self.feed.sync()
        for site in await self.gateway.serve(self.listeners):
            url = f"http://{site.listener.host}:{site.port}"
            if site.listener.role != "trigger":
                # self.url is where the Invoke API is: the pollers and the summary use it.
                self.host, self.port = site.listener.host, site.port
            if site.listener.role != "invoke":
                self.trigger_url = url
        token = self._pollers_token
        self.pollers = PollerGroup(
            gateway_url=self.url,
            settings=self.settings,
            poller=self.poller_settings,
            gateway_authorization=(lambda: f"Bearer {token}") if token else None,
            secrets=self.secrets.reader,
            status_stores=status_stores(self.objects),
            # A Redis source's Kafka destination on the platform's cluster: its credentials.
            platform_kafka_security=platform_security(self.settings.kafka_security),
        )
        await self.pollers.start()
        self._mapping_lines = await self.pollers.update(self.feed.mapping_list())
        self.feed.start(self._run_mappings)
        self.schedules = DevSchedules(
            self.objects,
            gateway_url=self.url,
            authorization=(lambda: f"Bearer {token}") if token else None,
            destinations=self.gateway.destinations,
            registry=self.gateway.app[METRICS].registry,
            region=self.settings.region,
            settings=self.scheduler_settings,
        )
        self.schedules.start()
        self._schedule_lines = await schedule_lines(self.objects)
        self._print_summary()
        # Reloading must not stop silently: a watcher that fails is logged and started again,
        # comparing with what it saw last.
        self._seen = snapshot(self.paths, self._code_folders())
        self._watcher = aiokit.guarded_task(
            "kfaas-dev-watcher", self._watch, log=log, restart=WATCHER_RESTART
        )

    async def stop(self) -> None:
        if self._watcher is not None:
            await aiokit.stop_tasks([self._watcher], grace_seconds=0)
        await self.feed.stop()
        if self.schedules is not None:
            await self.schedules.stop()
        if self.pollers is not None:
            await self.pollers.stop()
        await self.gateway.close()
        await self.backend.stop()
        self.close()

    def close(self) -> None:
        """Let the state folder go (another kfaas dev may take it) and remove the scratch."""
        self.objects.close()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def _print_summary(self) -> None:
        print(f"kfaas dev: serving on {self.url}", file=self.out)
        if self.trigger_url != self.url:
            print(f"kfaas dev: serving HTTP triggers on {self.trigger_url}", file=self.out)
        print(f"  state: {self.state}", file=self.out)
        print(f"  async queue: {_redacted(self.async_queue)}", file=self.out)
        if self.auth.enabled:
            print(f"  auth: {self.auth.mode} (Invoke API callers must sign)", file=self.out)
        else:
            print(
                "  auth: none: the Invoke API is UNAUTHENTICATED, anyone who reaches "
                f"{self.url} may invoke and read every function (--auth sigv4 --credentials FILE)",
                file=self.out,
            )
        for function in self.registry.list():
            name = function.metadata.name
            line = (
                f"  {function.key:<32} invoke: {self.url}/2015-03-31/functions/{name}/invocations"
            )
            if function.metadata.namespace != self.registry.default_namespace:
                line = (
                    f"  {function.key:<32} invoke: "
                    f"{self.url}/2015-03-31/functions/{function.metadata.namespace}%2F{name}"
                    "/invocations"
                )
            print(line, file=self.out)
            found = self.backend.interpreters.resolve(function.spec.runtime)
            if not isinstance(found, str) and not found.own:
                print(f"  {'':<32} runs on: {found.python}", file=self.out)
            if function.spec.http.enabled:
                print(f"  {'':<32} http:   {self.trigger_url}/fn/{function.key}/", file=self.out)
        for line in [*self._mapping_lines, *self._schedule_lines]:
            print(f"  {line}", file=self.out)
        self.out.flush()

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_SECONDS)
            current = snapshot(self.paths, self._code_folders())
            if current == self._seen:
                continue
            # Files caught mid-write (an editor truncates, then writes) are not applied: a
            # function missing from them would be deleted, its versions and aliases with it.
            await asyncio.sleep(SETTLE_SECONDS)
            if snapshot(self.paths, self._code_folders()) != current:
                continue  # still changing: the next look tries again
            self._seen = current
            try:
                manifests = load_manifests(self.paths)
                schedules = load_schedules(self.paths)
                secrets = load_secrets(self.paths), load_config_maps(self.paths)
                self.check_runtimes(manifests)
                self.check_state(manifests)
                changed = await apply_manifests(self.objects, self.code, [*manifests, *schedules])
                self.secrets.replace(*secrets)
            except (ManifestError, RuntimeUnavailable, store.StoreError, CodeStoreError) as exc:
                log.error("manifests not reloaded: %s", exc)
                continue
            self.manifests = manifests
            # Mappings reach the pollers through the store's listener (cli/dev_state.py).
            for plural, namespace, name in changed:
                if plural == store.FUNCTIONS:
                    print(f"kfaas dev: reloaded {namespace}/{name}", file=self.out, flush=True)


def _redacted(queue: str) -> str:
    """The queue URL without a password, fit to print."""
    spec = parse_queue_url(queue)
    if spec.kind != "redis" or "@" not in spec.url:
        return queue
    scheme, rest = spec.url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"


async def run_dev(paths: Sequence[str], options: ServerSettings) -> int:
    """`kfaas dev` (and a local `kfaas gateway`) with the settings read at the command's start."""
    server: DevServer | None = None
    try:
        server = DevServer(
            paths,
            host=options.host,
            port=options.port,
            settings=options.settings,
            async_queue=options.async_queue,
            listeners=options.listeners,
            credentials=options.credentials,
            poller=options.poller,
            state=options.state,
            scheduler=options.scheduler,
        )
        await server.start()
    except store.StoreError as exc:  # the state folder is another's, or holds an unreadable file
        print(f"kfaas dev: {exc}", file=sys.stderr)
        if server is not None:
            server.close()
        return 2
    except ManifestError as exc:
        print(f"kfaas dev: invalid manifests\n{exc}", file=sys.stderr)
        if server is not None:
            server.close()
        return 2
    except RuntimeUnavailable as exc:
        print(f"kfaas dev: runtime not available here\n{exc}", file=sys.stderr)
        if server is not None:
            server.close()
        return 2
    except CodeStoreError as exc:
        print(f"kfaas dev: code store unavailable: {exc}", file=sys.stderr)
        if server is not None:
            server.close()
        return 1
    except QueueError as exc:
        print(f"kfaas dev: async queue unavailable: {exc}", file=sys.stderr)
        if server is not None:
            await server.stop()
        return 1
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    print("kfaas dev: stopping", file=sys.stderr)
    await server.stop()
    return 0
