"""The mark half of the code store's GC: which digests the listed objects reference (ADR 025)."""

from __future__ import annotations

import hashlib
from typing import Any

from kfaas.code_digests import CodeDigest
from kfaas.code_marks import CODE_ANNOTATION, marked_digests


def _hex(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


def _function(code: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Function", "spec": {"runtime": "python3.11", "code": code}}


def _version(code: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "FunctionVersion", "spec": {"version": 1, "template": {"code": code}}}


def _workload(annotations: dict[str, str] | None) -> dict[str, Any]:
    meta = {} if annotations is None else {"annotations": annotations}
    return {"kind": "ReplicaSet", "spec": {"template": {"metadata": meta}}}


def test_each_kind_marks_the_digest_it_names() -> None:
    zip_a, zip_b, zip_c = _hex("a"), _hex("b"), _hex("c")
    marked = marked_digests(
        [_function({"zip": {"sha256": zip_a, "size": 10}})],
        [_version({"zip": {"sha256": zip_b, "size": 10}})],
        [_workload({CODE_ANNOTATION: zip_c})],
    )
    assert marked == {CodeDigest(zip_a), CodeDigest(zip_b), CodeDigest(zip_c)}


def test_code_that_is_not_a_zip_marks_nothing_but_its_workloads_digest() -> None:
    marked = marked_digests(
        [_function({"inline": {"app.py": "x"}}), _function({"image": "registry/x:1"})],
        [_version({"image": "registry/x:1"})],
        [_workload(None), _workload({"other": "x"})],
    )
    assert marked == set()


def test_garbled_objects_mark_nothing_and_do_not_fail() -> None:
    garbled: list[dict[str, Any]] = [
        {},
        {"spec": None},
        {"spec": {"code": "zip"}},
        {"spec": {"code": {"zip": {"sha256": "NOT-HEX"}}}},
        {"spec": {"code": {"zip": {"sha256": 42}}}},
    ]
    versions: list[dict[str, Any]] = [{"spec": {"template": []}}]
    workloads = [_workload({CODE_ANNOTATION: "short"})]
    assert marked_digests(garbled, versions, workloads) == set()


def test_the_annotation_is_the_operators() -> None:
    from kfaas.operator import names

    assert names.CODE_SHA256_ANNOTATION == CODE_ANNOTATION
