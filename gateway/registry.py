"""The functions a gateway knows, by ``namespace/name``, and how Invoke API names resolve to them.

Published versions are held beside them, each as a Function run from its template and keyed
``namespace/name:N`` (so routing, instances, demand and metrics treat it as a function of its
own); aliases are routing data: resolving ``name:alias`` draws the version that runs (ADR 024).

Fed by ``kfaas dev`` from manifest files, or in a cluster by watching Function objects. Beside
each Function it keeps the facts Lambda's read operations report (ADR 024): in a cluster those of
the API object; in ``kfaas dev`` those of the registry itself — a uid per function for this run,
a generation counted up at every change ``kfaas dev`` applies and the time it applied it.
"""

from __future__ import annotations

import builtins
import datetime
import random
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from kfaas.code import tree_files
from kfaas.lambda_code import CodeFacts, files_code, image_code
from kfaas.lambda_shapes import ObjectFacts
from kfaas.lambda_versions import choose_version
from kfaas.manifests import Function
from kfaas.names import LATEST, FunctionRef, function_arn, function_key
from kfaas.version_manifests import FunctionAlias, FunctionVersion

from .errors import ResourceNotFound

FunctionsListener = Callable[[str, Function | None], None]


@dataclass(frozen=True)
class FunctionFacts:
    """What GetFunction reports beyond the spec: the object's facts and its code's."""

    object: ObjectFacts
    # None when the gateway cannot see the code (a `code.configMap` in a cluster).
    code: CodeFacts | None


@dataclass(frozen=True)
class AliasRoute:
    """Where an alias sends invocations: its version, and the one extra version's weight."""

    primary: str
    """`$LATEST` or a published version's number."""
    weights: Mapping[str, float] = field(default_factory=dict)


def version_function(version: FunctionVersion) -> Function:
    """A published version as the registry runs it: its template, keyed `namespace/name:N`."""
    return version.function().as_version(version.spec.version)


def version_key(object_key: str) -> str:
    """The run key `namespace/name:N` of the FunctionVersion object `namespace/name.N`."""
    namespace, _, name = object_key.partition("/")
    function, _, number = name.rpartition(".")
    return function_key(namespace, function, number)


def alias_route(alias: FunctionAlias) -> AliasRoute:
    return AliasRoute(alias.spec.function_version, alias.spec.weights)


def code_facts(function: Function, *, local_files: bool = True) -> CodeFacts | None:
    """CodeSha256/CodeSize of the code as its canonical zip (or image), if the gateway sees it.

    ``local_files`` reads a `code.path` folder (kfaas dev); in a cluster it is not the gateway's.
    """
    code = function.spec.code
    if code.image is not None:
        return image_code(code.image)
    if code.inline is not None:
        return files_code({name: text.encode() for name, text in code.inline.items()})
    root = function.code_root() if local_files else None
    if root is not None:
        return files_code(tree_files(root) if root.is_dir() else {})
    return None


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class FunctionRegistry:
    def __init__(self, *, default_namespace: str = "default", region: str = "us-east-1") -> None:
        self.default_namespace = default_namespace
        self.region = region
        # `$LATEST` by `namespace/name` and published versions by `namespace/name:N`.
        self._functions: dict[str, Function] = {}
        self._facts: dict[str, FunctionFacts] = {}
        self._aliases: dict[tuple[str, str, str], AliasRoute] = {}
        self._listeners: list[FunctionsListener] = []
        # The uniform draw an alias's weighted choice takes, one per invocation (tests fix it).
        self.draw: Callable[[], float] = random.random

    def subscribe(self, listener: FunctionsListener) -> None:
        self._listeners.append(listener)

    def put(self, function: Function, facts: FunctionFacts | None = None) -> None:
        """Hold ``function``; without ``facts`` (kfaas dev) each put counts as a change."""
        key = function.key
        self._facts[key] = facts or self._next_facts(key, function)
        self._functions[key] = function
        for listener in self._listeners:
            listener(key, function)

    def _next_facts(self, key: str, function: Function) -> FunctionFacts:
        previous = self._facts.get(key)
        now = _now()
        if previous is None:
            known = ObjectFacts(uid=str(uuid.uuid4()), generation=1, created=now)
        else:
            known = previous.object
            known = ObjectFacts(known.uid, known.generation + 1, known.created, (now,))
        return FunctionFacts(object=known, code=code_facts(function))

    def remove(self, key: str) -> None:
        self._facts.pop(key, None)
        if self._functions.pop(key, None) is not None:
            for listener in self._listeners:
                listener(key, None)

    def find(self, key: str) -> Function | None:
        return self._functions.get(key)

    def facts(self, key: str) -> FunctionFacts:
        """The facts of a function this registry holds (KeyError otherwise)."""
        return self._facts[key]

    def get(self, key: str) -> Function:
        function = self._functions.get(key)
        if function is None:
            namespace, _, name = key.partition("/")
            raise ResourceNotFound(f"Function not found: {self.arn(namespace, name)}")
        return function

    def get_ref(self, ref: FunctionRef) -> Function:
        return self.get(f"{ref.namespace}/{ref.name}")

    def list(self) -> list[Function]:
        """The functions (`$LATEST`); published versions are in ``versions``."""
        return [f for key, f in sorted(self._functions.items()) if f.version == LATEST]

    def versions(self) -> builtins.list[Function]:
        return [f for key, f in sorted(self._functions.items()) if f.version != LATEST]

    def put_alias(self, namespace: str, function: str, alias: str, route: AliasRoute) -> None:
        self._aliases[(namespace, function, alias)] = route

    def remove_alias(self, namespace: str, function: str, alias: str) -> None:
        self._aliases.pop((namespace, function, alias), None)

    def alias(self, namespace: str, function: str, alias: str) -> AliasRoute | None:
        return self._aliases.get((namespace, function, alias))

    def resolve(self, ref: FunctionRef) -> Function:
        """What an invocation of ``ref`` runs: `$LATEST`, version N, or a version its alias
        draws (a new draw per call); ResourceNotFound, with Lambda's message, for none."""
        qualifier = ref.qualifier or LATEST
        version = qualifier
        if qualifier != LATEST and not qualifier.isdigit():
            route = self._aliases.get((ref.namespace, ref.name, qualifier))
            if route is None:
                raise self._not_found(ref)
            version = choose_version(route.primary, route.weights, self.draw())
        function = self._functions.get(function_key(ref.namespace, ref.name, version))
        if function is None:
            raise self._not_found(ref)
        return function

    def _not_found(self, ref: FunctionRef) -> ResourceNotFound:
        qualifier = None if ref.qualifier == LATEST else ref.qualifier
        arn = function_arn(ref.namespace, ref.name, region=self.region, qualifier=qualifier)
        return ResourceNotFound(f"Function not found: {arn}")

    def arn(self, namespace: str, name: str) -> str:
        return function_arn(namespace, name, region=self.region)
