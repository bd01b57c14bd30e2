"""A cluster refuses an uploaded zip (``code.zip``) until it runs the code store (ADR 025).

Nothing accepted is ignored: without the store's server and the pods' fetch step the pods would
start with an empty /var/task, so the operator reports why instead of building anything.
"""

from __future__ import annotations

import asyncio
from typing import Any

from kfaas.code import code_digest
from kfaas.manifests import Function, parse_manifest
from kfaas.operator.config import OperatorConfig
from kfaas.operator.reconcile import ZIP_REFUSAL, reconcile_function

DIGEST = "ab" * 32


class _NothingApplied:
    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the reconciler called {name} for a refused zip")


def _zip_function() -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "thumb", "namespace": "media", "uid": "u-1", "generation": 1},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"zip": {"sha256": DIGEST, "size": 120}},
        },
    }


def test_a_zip_function_is_refused_with_the_reason_and_nothing_is_built() -> None:
    config = OperatorConfig(image="registry.example/kfaas:1.0")
    result = asyncio.run(reconcile_function(_NothingApplied(), _zip_function(), config))  # type: ignore[arg-type]
    code = next(outcome for outcome in result.outcomes if outcome.type == "CodeReady")
    assert (code.status, code.reason, code.message) == (
        "False",
        "CodeStoreNotAvailable",
        ZIP_REFUSAL,
    )
    resources = next(outcome for outcome in result.outcomes if outcome.type == "ResourcesReady")
    assert resources.status == "Unknown"
    assert result.written == []


def test_a_zip_is_named_by_its_own_digest() -> None:
    manifest = parse_manifest(_zip_function(), "fn.yaml")
    assert isinstance(manifest, Function)
    assert code_digest(manifest) == DIGEST
