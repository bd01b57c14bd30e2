"""The functions a gateway knows, by ``namespace/name``, and how Invoke API names resolve to them.

Fed by ``kfaas dev`` from manifest files, or in a cluster by watching Function objects.
"""

from __future__ import annotations

from collections.abc import Callable

from kfaas.manifests import Function
from kfaas.names import FunctionRef, function_arn

from .errors import ResourceNotFound

FunctionsListener = Callable[[str, Function | None], None]


class FunctionRegistry:
    def __init__(self, *, default_namespace: str = "default", region: str = "us-east-1") -> None:
        self.default_namespace = default_namespace
        self.region = region
        self._functions: dict[str, Function] = {}
        self._listeners: list[FunctionsListener] = []

    def subscribe(self, listener: FunctionsListener) -> None:
        self._listeners.append(listener)

    def put(self, function: Function) -> None:
        self._functions[function.key] = function
        for listener in self._listeners:
            listener(function.key, function)

    def remove(self, key: str) -> None:
        if self._functions.pop(key, None) is not None:
            for listener in self._listeners:
                listener(key, None)

    def find(self, key: str) -> Function | None:
        return self._functions.get(key)

    def get(self, key: str) -> Function:
        function = self._functions.get(key)
        if function is None:
            namespace, _, name = key.partition("/")
            raise ResourceNotFound(f"Function not found: {self.arn(namespace, name)}")
        return function

    def get_ref(self, ref: FunctionRef) -> Function:
        return self.get(f"{ref.namespace}/{ref.name}")

    def list(self) -> list[Function]:
        return [self._functions[key] for key in sorted(self._functions)]

    def arn(self, namespace: str, name: str) -> str:
        return function_arn(namespace, name, region=self.region)
