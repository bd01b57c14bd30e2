"""``kfaas dev``'s objects at work: every change in its store feeds the gateway, instances, pollers.

The object store (``kfaas dev --state DIR``) calls ``DevObjects.changed`` after every write, from
manifests applied by ``cli/dev_files.py`` or from the management API alike (ADR 024), so a
function created through the API is invokable at once. Changes are dispatched by plural
(``handlers``): Functions go to the registry, which hands them to the local backend;
EventSourceMappings to the pollers; published versions to the registry as functions of their
own (``namespace/name:N``, with local instances of their own) and aliases as its routing data,
for qualified invocations. Another kind is fed by adding its handler.

What the operator does in a cluster is done here too: once a function's generation (or a
published version) is handed to the local instances, its status gets ``observedGeneration``, a
``Ready`` condition and ``codeSha256`` (or ``Ready`` False with the reason: a runtime no
interpreter here runs, a zip that cannot be unpacked), so ``lambda_shapes.function_state`` reads
Pending → Active as in a cluster. The code store's sweep runs at start and hourly over the
digests the objects name.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Final, TypeVar

from kfaas import aiokit
from kfaas import object_store as store
from kfaas.api_objects import Model, from_api_object, status_differs
from kfaas.code import code_digest
from kfaas.code_archives import CodeArchiveError
from kfaas.code_digests import CodeDigest, DigestMismatch
from kfaas.code_folder import DirectoryCodeStore
from kfaas.code_marks import marked_digests
from kfaas.code_store import CodeStoreError
from kfaas.dir_store import DirectoryObjectStore
from kfaas.gateway.registry import (
    FunctionFacts,
    FunctionRegistry,
    alias_route,
    code_facts,
    version_function,
    version_key,
)
from kfaas.interpreters import Interpreters
from kfaas.lambda_code import CodeFacts, stored_code
from kfaas.lambda_shapes import object_facts
from kfaas.manifests import EventSourceMapping, Function, ManifestError
from kfaas.names import LATEST
from kfaas.object_bodies import rfc3339_now
from kfaas.object_store import Body
from kfaas.version_manifests import (
    CodeMismatch,
    FunctionVersion,
    checked_code,
    parse_alias,
    parse_version,
)

from .dev_files import CODE_PATH, CODE_PATH_SHA256
from .dev_status import (
    CODE_MISMATCH,
    CODE_NOT_AVAILABLE,
    RUNTIME_NOT_AVAILABLE,
    Problem,
    function_status,
    mapping_status,
)

log = logging.getLogger("kfaas.dev")

GC_INTERVAL_SECONDS: Final = 3600.0
RESTART: Final = aiokit.Backoff(first=1.0, most=30.0)

ChangeHandler = Callable[[str, Body | None], None]
# Runs exactly these mappings; returns why each one that could not start did not, by key.
MappingsUpdate = Callable[[list[EventSourceMapping]], Awaitable[Mapping[str, str]]]
Parsed = TypeVar("Parsed")


def function_code_facts(function: Function) -> CodeFacts | None:
    """CodeSha256/CodeSize: a stored zip by its digest and size, other code as its files."""
    stored = function.spec.code.zip
    if stored is not None:
        return stored_code(CodeDigest(stored.sha256), stored.size)
    return code_facts(function)


class DevObjects:
    """The store's listener and the tasks that act on what it heard (see the module docstring)."""

    def __init__(
        self,
        objects: DirectoryObjectStore,
        code: DirectoryCodeStore,
        registry: FunctionRegistry,
        interpreters: Interpreters,
        *,
        clock: Callable[[], str] = rfc3339_now,
    ) -> None:
        self.objects = objects
        self.code = code
        self.registry = registry
        self.interpreters = interpreters
        self.clock = clock
        self.mappings: dict[str, EventSourceMapping] = {}
        # By plural: what a change of that kind does. Kinds without a handler are only stored.
        self.handlers: dict[str, ChangeHandler] = {
            store.FUNCTIONS: self._function_changed,
            store.EVENT_SOURCE_MAPPINGS: self._mapping_changed,
            store.FUNCTION_VERSIONS: self._version_changed,
            store.FUNCTION_ALIASES: self._alias_changed,
        }
        self._statuses: set[str] = set()
        self._version_statuses: set[str] = set()
        self._statuses_wanted = asyncio.Event()
        self._mappings_changed = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    # -- the store's listener -------------------------------------------------------------

    def changed(self, plural: str, key: str, body: Body | None) -> None:
        handler = self.handlers.get(plural)
        if handler is not None:
            handler(key, body)

    async def sync(self) -> None:
        """Feed every stored object once (the store tells only of changes after ``open``)."""
        for plural in list(self.handlers):
            for body in await self.objects.list(plural):
                metadata = body["metadata"]
                self.changed(plural, f"{metadata['namespace']}/{metadata['name']}", body)

    def _function_changed(self, key: str, body: Body | None) -> None:
        if body is None:
            self.registry.remove(key)
            return
        function = _parsed(body, Function)
        if function is None:
            return
        facts = FunctionFacts(object=object_facts(body), code=function_code_facts(function))
        self.registry.put(function, facts)  # the backend hears it from the registry
        self._statuses.add(key)
        self._statuses_wanted.set()

    def _version_changed(self, key: str, body: Body | None) -> None:
        """A published version runs as a function of its own, keyed `namespace/name:N`."""
        version = None if body is None else _parsed_kind(body, parse_version)
        if body is None or version is None:
            self.registry.remove(version_key(key))
            return
        try:
            code = checked_code(version)
        except CodeMismatch as exc:  # a state file edited by hand (the store refuses it)
            log.error("FunctionVersion %s not served: %s", key, exc)
            self.registry.remove(version_key(key))
        else:
            facts = FunctionFacts(object=object_facts(body), code=code)
            self.registry.put(version_function(version), facts)
        self._version_statuses.add(key)
        self._statuses_wanted.set()

    def _alias_changed(self, key: str, body: Body | None) -> None:
        """An alias is routing data: which version(s) an invocation of `name:alias` runs."""
        namespace, _, name = key.partition("/")
        function, _, alias_name = name.partition(".")  # a function name holds no dot
        alias = None if body is None else _parsed_kind(body, parse_alias)
        if alias is None:
            self.registry.remove_alias(namespace, function, alias_name)
        else:
            self.registry.put_alias(namespace, function, alias_name, alias_route(alias))

    def _mapping_changed(self, key: str, body: Body | None) -> None:
        mapping = None if body is None else _parsed(body, EventSourceMapping)
        if mapping is None:
            self.mappings.pop(key, None)
        else:
            self.mappings[key] = mapping
        self._mappings_changed.set()

    def mapping_list(self) -> list[EventSourceMapping]:
        return [self.mappings[key] for key in sorted(self.mappings)]

    # -- what runs where ------------------------------------------------------------------

    async def code_root(self, function: Function) -> Path | None:
        """The folder a zip function runs in (None: not a zip, the backend knows the rest).

        A `code.path` function applied from files runs in its folder while its spec still names
        the zip made of it; otherwise (code uploaded through the API) in the unpacked zip.
        """
        stored = function.spec.code.zip
        if stored is None:
            return None
        annotations = function.metadata.annotations
        folder = annotations.get(CODE_PATH)
        latest = function.version == LATEST  # a version runs the zip it pinned, never the folder
        if folder and latest and annotations.get(CODE_PATH_SHA256) == stored.sha256:
            return Path(folder)
        return await self.code.tree(CodeDigest(stored.sha256))

    async def _problem(self, function: Function) -> Problem | None:
        found = self.interpreters.resolve(function.spec.runtime)
        if isinstance(found, str):
            return RUNTIME_NOT_AVAILABLE, found
        try:
            await self.code_root(function)
        except (CodeStoreError, CodeArchiveError, DigestMismatch) as exc:
            return CODE_NOT_AVAILABLE, f"the code cannot be unpacked: {exc}"
        return None

    # -- tasks ----------------------------------------------------------------------------

    def start(self, update_mappings: MappingsUpdate) -> None:
        """Status writes, the pollers' updates and the hourly sweep, each a guarded task."""

        async def mappings() -> None:
            while True:
                await self._mappings_changed.wait()
                self._mappings_changed.clear()
                refused = await update_mappings(self.mapping_list())
                for key in sorted(self.mappings):
                    try:
                        await self._write_mapping_status(key, refused.get(key))
                    except store.StoreError as exc:
                        log.warning("status of mapping %s not written: %s", key, exc)

        self._tasks = [
            aiokit.guarded_task("kfaas-dev-status", self._write_statuses, log=log, restart=RESTART),
            aiokit.guarded_task("kfaas-dev-mappings", mappings, log=log, restart=RESTART),
            aiokit.guarded_task("kfaas-dev-code-gc", self._sweep_hourly, log=log, restart=RESTART),
        ]

    async def stop(self) -> None:
        await aiokit.stop_tasks(self._tasks, grace_seconds=0)
        self._tasks = []

    async def _write_statuses(self) -> None:
        while True:
            await self._statuses_wanted.wait()
            self._statuses_wanted.clear()
            while self._statuses:
                key = self._statuses.pop()
                try:
                    await self._write_status(key)
                except store.StoreError as exc:
                    log.warning("status of %s not written: %s", key, exc)
            while self._version_statuses:
                key = self._version_statuses.pop()
                try:
                    await self._write_version_status(key)
                except store.StoreError as exc:
                    log.warning("status of version %s not written: %s", key, exc)

    async def _write_status(self, key: str) -> None:
        namespace, _, name = key.partition("/")
        try:
            body = await self.objects.get(store.FUNCTIONS, namespace, name)
        except store.ObjectNotFound:
            return
        function = _parsed(body, Function)
        if function is None:
            return
        problem = await self._problem(function)
        generation = int(body["metadata"].get("generation", 1))
        live = body.get("status") or {}
        status = function_status(generation, code_digest(function), problem, live, self.clock())
        if status_differs(live, status):
            await self.objects.write_status(store.FUNCTIONS, namespace, name, status)

    async def _write_version_status(self, key: str) -> None:
        """A version's status as the operator would write it, for `published_version_active`."""
        namespace, _, name = key.partition("/")
        try:
            body = await self.objects.get(store.FUNCTION_VERSIONS, namespace, name)
        except store.ObjectNotFound:
            return
        version = _parsed_kind(body, parse_version)
        if version is None:
            return
        function = version_function(version)
        problem = _code_mismatch(version) or await self._problem(function)
        generation = int(body["metadata"].get("generation", 1))
        live = body.get("status") or {}
        status = function_status(generation, code_digest(function), problem, live, self.clock())
        if status_differs(live, status):
            await self.objects.write_status(store.FUNCTION_VERSIONS, namespace, name, status)

    async def _write_mapping_status(self, key: str, refused: str | None) -> None:
        namespace, _, name = key.partition("/")
        try:
            body = await self.objects.get(store.EVENT_SOURCE_MAPPINGS, namespace, name)
        except store.ObjectNotFound:
            return
        generation = int(body["metadata"].get("generation", 1))
        enabled = bool((body.get("spec") or {}).get("enabled", True))
        live = body.get("status") or {}
        status = mapping_status(generation, enabled, refused, live, self.clock())
        if status_differs(live, status):
            # Against the version read: a poller's report written in between keeps its Polling,
            # and that write's change event brings the fold back here.
            version = str(body["metadata"]["resourceVersion"])
            with contextlib.suppress(store.Conflict):
                await self.objects.write_status(
                    store.EVENT_SOURCE_MAPPINGS, namespace, name, status, resource_version=version
                )

    async def collect_garbage(self, *, now: float | None = None) -> list[CodeDigest]:
        """Sweep the zips no Function or version names (after the store's grace period)."""
        functions = await self.objects.list(store.FUNCTIONS)
        versions = await self.objects.list(store.FUNCTION_VERSIONS)
        # No workloads here: kfaas dev's instances run what the registry holds.
        marked = marked_digests(functions, versions, workloads=())
        deleted = await self.code.sweep({digest.hex for digest in marked}, now=now)
        for digest in deleted:
            log.info("code %s deleted: no function or version uses it", digest.hex)
        return deleted

    async def _sweep_hourly(self) -> None:
        while True:
            await asyncio.sleep(GC_INTERVAL_SECONDS)
            await self.collect_garbage()


def _code_mismatch(version: FunctionVersion) -> Problem | None:
    """Why a version is not served when its digest is not its code's, as the operator says it."""
    try:
        checked_code(version)
    except CodeMismatch as exc:
        return CODE_MISMATCH, "; ".join(exc.problems)
    return None


def _parsed_kind(body: Body, parse: Callable[[Body], Parsed]) -> Parsed | None:
    try:
        return parse(body)
    except ManifestError as exc:  # the store validated it: a file edited by hand
        log.error("%s not served: %s", body.get("kind", "object"), exc)
        return None


def _parsed(body: Body, kind: type[Model]) -> Model | None:
    try:
        return from_api_object(body, kind)
    except ManifestError as exc:  # the store validated it: a file edited by hand
        log.error("%s not served: %s", kind.__name__, exc)
        return None
