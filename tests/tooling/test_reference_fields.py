"""No manifest field that lies (issue 12 point 7): reference, models and their readers agree.

The reference is the field tables of docs/functions.md (Function, EventSourceMapping,
FunctionVersion and FunctionAlias) and docs/schedules.md (Schedule). For every kind this walk
checks that

- every field path a table documents exists in the kind's models (``kfaas.manifests``,
  ``kfaas.version_manifests``, ``kfaas.schedule_manifests``, ``kfaas.podtemplate``);
- every field of those models is documented: in a table row of its own, or named in the row of its
  parent (`` `{name, key}` ``, "`requests` and `limits`");
- every field has a reader: ``READERS`` (tooling/field_readers.py) names, per model field, a
  file outside the models and the CRD generator and the expression in it that reads the field (an
  attribute access, a property of the model that reads it, or a ``model_dump`` that hands the
  whole object on). The expression is looked for in the file's syntax tree, so a reader that goes
  away fails the test, and a field added to a model without a reader fails it too.

A field only one mode reads (``code.path``: `kfaas dev`) counts when that mode reads it and the
reference says so. ``PENDING`` lists fields whose reader another helper of issue 12 is building
now, ``UNREAD`` the ones nothing reads that were reported; both show as xfail until a reader exists.
"""

from __future__ import annotations

import ast
import functools
import inspect
import re
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic import BaseModel
from tooling.field_readers import DEV_ONLY, PENDING, PENDING_DOCS, READERS, UNREAD

from kfaas.manifests import EventSourceMappingSpec, FunctionSpec
from kfaas.schedule_manifests import ScheduleSpec
from kfaas.version_manifests import FunctionAliasSpec, FunctionVersionSpec

ROOT = Path(__file__).resolve().parents[2]
# The kinds' specs; a FunctionVersion's `template` is a Function's spec, walked as the Function.
KINDS: dict[str, type[BaseModel]] = {
    "Function": FunctionSpec,
    "EventSourceMapping": EventSourceMappingSpec,
    "FunctionVersion": FunctionVersionSpec,
    "FunctionAlias": FunctionAliasSpec,
    "Schedule": ScheduleSpec,
}
# Where each kind's fields are documented: a file and the `## ` section holding its tables.
REFERENCE: dict[str, tuple[str, str | None]] = {
    "Function": ("docs/functions.md", "Function"),
    "EventSourceMapping": ("docs/functions.md", "EventSourceMapping"),
    "FunctionVersion": ("docs/functions.md", "FunctionVersion and FunctionAlias"),
    "FunctionAlias": ("docs/functions.md", "FunctionVersion and FunctionAlias"),
    "Schedule": ("docs/schedules.md", None),
}
# The models themselves, the CRD generator and the CEL rules: they define fields, not read them.
NOT_READERS = {
    "kfaas/manifests.py",
    "kfaas/version_manifests.py",
    "kfaas/schedule_manifests.py",
    "kfaas/podtemplate.py",
    "operator/crdgen.py",
    "operator/schedule_rules.py",
}
SOURCES = ("kfaas", "runtime", "gateway", "operator", "pollers", "cli", "codestore", "scheduler")

# -- the models -----------------------------------------------------------------------------------


def _submodels(annotation: object) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [model for arg in typing.get_args(annotation) for model in _submodels(arg)]


def _walk(model: type[BaseModel], prefix: str = "") -> Iterator[tuple[str, type[BaseModel], str]]:
    """(documented path, owning model, field name) for every field under ``model``."""
    for name, field in model.model_fields.items():
        path = f"{prefix}{field.alias or name}"
        yield path, model, name
        if model is FunctionVersionSpec and name == "template":
            continue  # a Function's spec: walked, documented and read as the Function's
        for sub in _submodels(field.annotation):
            yield from _walk(sub, path + ".")


@functools.cache
def model_paths(kind: str) -> dict[str, str]:
    """Each field path of a kind's spec (camelCase, no ``[]``) → ``Model.field``."""
    return {path: f"{owner.__name__}.{name}" for path, owner, name in _walk(KINDS[kind])}


def model_fields() -> set[str]:
    return {field for kind in KINDS for field in model_paths(kind).values()}


# -- the reference --------------------------------------------------------------------------------


def _section(text: str, heading: str | None) -> str:
    if heading is None:
        return text
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    assert match, f"no section '## {heading}'"
    return match.group(1)


def _rows(section: str) -> Iterator[list[str]]:
    """The cells of every row of the field tables (header ``| field | type…``)."""
    in_table = False
    for line in section.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if cells[0] == "field":
            in_table = len(cells) > 1 and cells[1].startswith("type")
            continue
        if in_table and not set(cells[0]) <= {"-", " "}:
            yield cells


def _row_paths(first_cell: str) -> list[str]:
    """`a.b`, `a.c` → both; `a.b` / `c` → `a.b`, `a.c`; `…x.y` stays a suffix (…)."""
    paths: list[str] = []
    for span in re.findall(r"`([^`]+)`", first_cell):
        span = span.replace("[]", "").replace("{}", "")
        if "." not in span.lstrip("…") and paths and "." in paths[-1]:
            paths.append(paths[-1].rsplit(".", 1)[0] + "." + span)
        else:
            paths.append(span)
    return paths


def _resolve(path: str, known: dict[str, str]) -> list[str]:
    if path.startswith("…"):
        return [full for full in known if full.endswith("." + path[1:])]
    return [path] if path in known else []


def documented(kind: str) -> tuple[set[str], list[str]]:
    """The kind's model paths the reference documents, and documented paths no model has."""
    file, heading = REFERENCE[kind]
    source = ROOT / file
    if not source.exists():
        return set(), [f"{file} does not exist"]
    known = model_paths(kind)
    found: set[str] = set()
    unknown: list[str] = []
    for cells in _rows(_section(source.read_text(), heading)):
        if re.match(r"^(FunctionVersion|FunctionAlias) `metadata", cells[0]):
            continue  # object metadata, not a spec field
        for path in _row_paths(cells[0]):
            if path in ("spec", "metadata.name"):
                continue
            resolved = _resolve(path, known)
            if not resolved and kind in ("FunctionVersion", "FunctionAlias"):
                # One table documents both kinds: a path belongs to one of them.
                other = "FunctionAlias" if kind == "FunctionVersion" else "FunctionVersion"
                if _resolve(path, model_paths(other)):
                    continue
            if not resolved:
                unknown.append(path)
            for full in resolved:
                found.add(full)
                # Children named in the row's other cells: `{name, key}`, "`requests` and …".
                for name in re.findall(r"`\{?([A-Za-z][A-Za-z0-9, ]*)\}?`", " ".join(cells[1:])):
                    for child in name.replace(" ", "").split(","):
                        if f"{full}.{child}" in known:
                            found.add(f"{full}.{child}")
    return found, unknown


def _pending_docs(kind: str, paths: list[str]) -> tuple[list[str], set[str]]:
    """The paths no helper is documenting right now, and why the others are missing."""
    pending = PENDING_DOCS.get(kind, {})
    left, reasons = [], set()
    for path in paths:
        prefix = next((p for p in pending if path == p or path.startswith(p)), None)
        if prefix is None:
            left.append(path)
        else:
            reasons.add(pending[prefix])
    return left, reasons


def test_the_row_forms_of_the_reference() -> None:
    assert _row_paths("`async.onSuccess`, `async.onFailure`") == [
        "async.onSuccess",
        "async.onFailure",
    ]
    assert _row_paths("`envFrom[].secretRef` / `configMapRef`") == [
        "envFrom.secretRef",
        "envFrom.configMapRef",
    ]
    known = model_paths("Function")
    assert _resolve("…kafka.topic", known) == [
        "async.onSuccess.kafka.topic",
        "async.onFailure.kafka.topic",
    ]
    assert _resolve("http.cors.maxAge", known) == ["http.cors.maxAge"]
    assert _resolve("http.cors.maxAgeSeconds", known) == []


@pytest.mark.parametrize("kind", KINDS)
def test_every_documented_field_exists(kind: str) -> None:
    _, unknown = documented(kind)
    left, reasons = _pending_docs(kind, unknown)
    assert not left, f"{REFERENCE[kind][0]} documents {kind} fields no model has: {left}"
    if reasons:
        pytest.xfail(f"being written: {sorted(reasons)}")


@pytest.mark.parametrize("kind", KINDS)
def test_every_field_is_documented(kind: str) -> None:
    found, _ = documented(kind)
    # An object is documented by its fields' rows (`async` by `async.maximumRetryAttempts`…).
    found |= {path for path in model_paths(kind) if any(f.startswith(path + ".") for f in found)}
    missing, reasons = _pending_docs(kind, sorted(set(model_paths(kind)) - found))
    assert not missing, f"{kind} fields missing from {REFERENCE[kind][0]}: {missing}"
    if reasons:
        pytest.xfail(f"being written: {sorted(reasons)}")


def test_fields_of_one_mode_say_so() -> None:
    rows = {
        path: " | ".join(cells)
        for cells in _rows(_section((ROOT / "docs/functions.md").read_text(), "Function"))
        for path in _row_paths(cells[0])
    }
    for path in DEV_ONLY:
        assert "`kfaas dev` only" in rows[path], rows[path]
        assert "refused by the API server" in rows[path], rows[path]


# -- the readers ----------------------------------------------------------------------------------


@functools.cache
def _unparsed(file: str) -> str:
    """The file as its syntax tree prints it: quotes and line breaks normalised."""
    return ast.unparse(ast.parse((ROOT / file).read_text()))


def _reads(file: str, expression: str) -> bool:
    """Whether ``file`` reads the field as ``expression``.

    A generated CRD under crds/ reads a field when a printer column shows it (kubectl get): the
    expression is then the column's jsonPath.
    """
    if not (ROOT / file).exists():
        return False
    if file.startswith("crds/"):
        crd = yaml.safe_load((ROOT / file).read_text())
        columns = crd["spec"]["versions"][0].get("additionalPrinterColumns", [])
        return expression in [column["jsonPath"] for column in columns]
    return expression in _unparsed(file)


def test_readers_name_real_fields_and_real_code() -> None:
    fields = model_fields()
    assert not set(READERS) - fields, f"READERS names no such field: {set(READERS) - fields}"
    for key in (*PENDING, *UNREAD):
        assert key in fields, f"{key} is no field"
    for key, (file, _) in READERS.items():
        assert file not in NOT_READERS, f"{key}: {file} defines fields, it is no reader"
        assert file.split("/", 1)[0] in (*SOURCES, "crds"), f"{key}: {file}"
        assert (ROOT / file).exists(), f"{key}: {file}"


# The models' properties READERS names as readers, and what each reads.
PROPERTIES: dict[tuple[type[BaseModel], str], str] = {
    (FunctionAliasSpec, "weights"): "self.routing_config.additional_version_weights",
    (ScheduleSpec, "expression"): "self.schedule_expression",
}


def test_the_properties_named_as_readers_read_their_fields() -> None:
    for (model, name), expression in PROPERTIES.items():
        prop = inspect.getattr_static(model, name)
        assert isinstance(prop, property) and prop.fget is not None
        assert expression in inspect.getsource(prop.fget), f"{model.__name__}.{name}"


@pytest.mark.parametrize("key", sorted(model_fields()))
def test_every_field_has_a_reader(key: str) -> None:
    reader = READERS.get(key)
    problem = None
    if reader is None:
        problem = f"{key}: no reader listed in READERS (what reads this field?)"
    elif not _reads(*reader):
        problem = f"{key}: {reader[0]} no longer reads it as {reader[1]!r} (moved? update READERS)"
    if problem is None:
        return
    if key in PENDING:
        pytest.xfail(f"being built: {PENDING[key]}")
    if key in UNREAD:
        pytest.xfail(f"unread, reported: {UNREAD[key]}")
    pytest.fail(problem)
