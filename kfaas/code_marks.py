"""Which stored zips are still referenced: the mark half of the code store's mark and sweep.

The store lists, fresh from the API server, every Function, every FunctionVersion and every kfaas
Deployment and ReplicaSet, and marks the digests they name: a Function's ``spec.code.zip.sha256``,
a version's ``spec.template.code.zip.sha256``, and the ``kfaas.dev/code-sha256`` annotation of a
workload's pod template (a rollout or rollback in progress still runs the previous zip). Aliases
need no marking: they point at versions, which cannot go while aliased (ADR 024). Pure: the lists
are API bodies, so the rule is tested without a cluster, and a body that names no valid digest
marks nothing rather than failing the sweep.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final

from kfaas.code_digests import CodeDigest

# The operator's annotation on pod templates (``operator/names.py`` CODE_SHA256_ANNOTATION).
CODE_ANNOTATION: Final = "kfaas.dev/code-sha256"

Body = Mapping[str, Any]


def _at(body: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(body, Mapping):
            return None
        body = body.get(key)
    return body


def _digest(value: Any) -> CodeDigest | None:
    if not isinstance(value, str):
        return None
    try:
        return CodeDigest(value)
    except ValueError:
        return None


def function_mark(function: Body) -> CodeDigest | None:
    """The zip a Function (``$LATEST``) runs, if its code is a stored zip."""
    return _digest(_at(function, "spec", "code", "zip", "sha256"))


def version_mark(version: Body) -> CodeDigest | None:
    """The zip a FunctionVersion's template pins, if any."""
    return _digest(_at(version, "spec", "template", "code", "zip", "sha256"))


def workload_mark(workload: Body) -> CodeDigest | None:
    """The code digest a Deployment's or ReplicaSet's pod template carries, if any."""
    return _digest(_at(workload, "spec", "template", "metadata", "annotations", CODE_ANNOTATION))


def marked_digests(
    functions: Iterable[Body], versions: Iterable[Body], workloads: Iterable[Body]
) -> set[CodeDigest]:
    """Every digest the listed objects reference (the items of each LIST)."""
    marks = [function_mark(item) for item in functions]
    marks += [version_mark(item) for item in versions]
    marks += [workload_mark(item) for item in workloads]
    return {mark for mark in marks if mark is not None}
