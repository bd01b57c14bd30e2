"""The committed CRDs are exactly what the manifest models generate, and carry every rule."""

from __future__ import annotations

import inspect
import re
from pathlib import Path
from typing import Any
from zoneinfo import available_timezones

import pydantic

from kfaas import manifests, schedule_manifests, version_manifests
from kfaas.operator import crdgen, schedule_rules
from kfaas.schedule_expressions import ScheduleExpressionError, parse_expression, time_zone

ROOT = Path(__file__).resolve().parents[2]


def test_committed_crds_equal_the_generated_ones() -> None:
    rendered = crdgen.rendered()
    for folder in crdgen.targets(ROOT):
        for name, text in rendered.items():
            path = folder / name
            assert path.read_text() == text, (
                f"{path} is out of date: run `python -m kfaas.operator.crdgen`"
            )


def test_check_mode_reports_stale_files(tmp_path: Path) -> None:
    assert crdgen.main(["--root", str(tmp_path), "--check"]) == 1
    assert crdgen.main(["--root", str(tmp_path)]) == 0
    assert crdgen.main(["--root", str(tmp_path), "--check"]) == 0


ALL_CRDS = (
    crdgen.function_crd,
    crdgen.mapping_crd,
    crdgen.version_crd,
    crdgen.alias_crd,
    crdgen.schedule_crd,
)


def test_every_model_validator_has_a_cel_rule() -> None:
    with_validators = {
        model
        for module in (manifests, version_manifests, schedule_manifests)
        for _, model in inspect.getmembers(module, inspect.isclass)
        if issubclass(model, pydantic.BaseModel)
        and model.__module__ == module.__name__
        and model.__pydantic_decorators__.model_validators
    }
    ruled = set(crdgen.CROSS_FIELD_RULES) | set(crdgen.ROOT_RULES)
    assert with_validators <= ruled, with_validators - ruled


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.get("properties", {}).items():
            found += _walk(value, f"{path}.{key}")
        if isinstance(node.get("items"), dict):
            found += _walk(node["items"], f"{path}[]")
        if isinstance(node.get("additionalProperties"), dict):
            found += _walk(node["additionalProperties"], f"{path}{{}}")
    return found


def _schema(crd: dict[str, Any]) -> dict[str, Any]:
    schema: dict[str, Any] = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    return schema


def test_schemas_are_structural() -> None:
    for make in ALL_CRDS:
        for path, node in _walk(_schema(make())):
            assert not {"$ref", "anyOf", "oneOf", "allOf", "title", "const"} & set(node), path
            assert "type" in node or node.get("x-kubernetes-preserve-unknown-fields"), path
            if "properties" in node:
                assert "additionalProperties" not in node, path
            if isinstance(node.get("exclusiveMinimum"), (int, float)) and not isinstance(
                node.get("exclusiveMinimum"), bool
            ):
                raise AssertionError(f"{path}: exclusiveMinimum must be a flag")


def test_ranges_enums_and_defaults_come_from_the_models() -> None:
    spec = _schema(crdgen.function_crd())["properties"]["spec"]["properties"]
    assert spec["memoryMB"] == {"type": "integer", "default": 128, "minimum": 128, "maximum": 10240}
    assert spec["runtime"]["enum"] == ["python3.11", "python3.12", "python3.13", "provided"]
    target = spec["scaling"]["properties"]["targetUtilization"]
    assert target["exclusiveMinimum"] is True and target["minimum"] == 0
    assert spec["scaling"]["default"] == {
        "minInstances": 0,
        "maxInstances": 100,
        "scaleToZeroAfterSeconds": 300,
        "targetUtilization": 0.7,
    }
    assert spec["async"]["properties"]["maximumRetryAttempts"]["maximum"] == 2
    assert "reserved" in spec["concurrency"]["properties"]
    assert "default" not in spec["concurrency"]["properties"]["reserved"]
    mapping = _schema(crdgen.mapping_crd())["properties"]["spec"]["properties"]
    assert mapping["batchSize"] == {
        "type": "integer",
        "default": 100,
        "minimum": 1,
        "maximum": 10000,
    }
    assert mapping["functionResponseTypes"]["items"]["enum"] == ["ReportBatchItemFailures"]


def test_printer_columns_and_status_subresource() -> None:
    for crd, columns in (
        (crdgen.function_crd(), ["Runtime", "Ready", "Instances", "Age"]),
        (crdgen.mapping_crd(), ["Function", "Source", "State", "Lag", "Age"]),
        (crdgen.version_crd(), ["Function", "Version", "Ready", "Instances", "Description", "Age"]),
        (
            crdgen.schedule_crd(),
            ["Expression", "Function", "State", "Next", "Last", "Description", "Age"],
        ),
    ):
        version = crd["spec"]["versions"][0]
        assert [c["name"] for c in version["additionalPrinterColumns"]] == columns
        assert version["subresources"] == {"status": {}}
    # An alias is routing data the gateway reads: nothing reconciles it, so it has no status.
    alias = crdgen.alias_crd()["spec"]["versions"][0]
    columns = ["Function", "Version", "Weights", "Description", "Age"]
    assert [c["name"] for c in alias["additionalPrinterColumns"]] == columns
    assert "subresources" not in alias and "status" not in alias["schema"]["openAPIV3Schema"]


def _rules(node: dict[str, Any]) -> list[str]:
    return [rule["rule"] for rule in node.get("x-kubernetes-validations", [])]


def test_versions_are_immutable_and_named_after_their_spec() -> None:
    root = _schema(crdgen.version_crd())
    assert any("self.metadata.name" in rule for rule in _rules(root))
    spec = root["properties"]["spec"]
    assert "self == oldSelf" in _rules(spec)
    assert spec["required"] == ["functionName", "version", "codeSha256", "configSha256", "template"]
    assert spec["properties"]["version"]["minimum"] == 1
    # The template is a Function's spec with its own rules, and its code pinned.
    template = spec["properties"]["template"]
    function = _schema(crdgen.function_crd())["properties"]["spec"]
    assert set(template["properties"]) == set(function["properties"])
    assert set(_rules(function)) < set(_rules(template))
    assert "!has(self.code.path) && !has(self.code.configMap)" in _rules(template)


def test_alias_rules_are_lambdas() -> None:
    root = _schema(crdgen.alias_crd())
    assert _rules(root) == ["self.metadata.name == self.spec.functionName + '.' + self.spec.name"]
    spec = root["properties"]["spec"]
    weights = spec["properties"]["routingConfig"]["properties"]["additionalVersionWeights"]
    assert weights["maxProperties"] == 1
    assert weights["additionalProperties"] == {"type": "number", "minimum": 0, "maximum": 1}
    assert spec["properties"]["functionVersion"]["pattern"] == r"^(\$LATEST|[1-9][0-9]*)$"
    assert len(_rules(spec)) == 3


def _documented(guide: str) -> set[str]:
    text = re.sub(r"```.*?```", "", (ROOT / "docs" / guide).read_text(), flags=re.S)
    spans = " ".join(re.findall(r"`([^`]+)`", text))
    return set(re.findall(r"[A-Za-z][A-Za-z0-9]*", spans))


# Where each kind's fields are described: a Schedule in its own guide.
GUIDES = {crdgen.schedule_crd: "schedules.md"}


def test_every_field_is_documented() -> None:
    missing = set()
    for make in ALL_CRDS:
        documented = _documented(GUIDES.get(make, "functions.md"))
        properties = _schema(make())["properties"]
        for part in ("spec", "status"):
            for path, _ in _walk(properties.get(part, {})):
                name = path.rsplit(".", 1)[-1].rstrip("[]{}")
                if name and name not in documented:
                    missing.add(f"{make.__name__}: {part}{path}")
    assert not missing, sorted(missing)


# AWS's documented examples and odd spellings the parser may take: whatever it accepts, the CRD's
# CEL regexes must accept too, or the API server would refuse a schedule that kfaas dev runs.
EXPRESSIONS = [
    "rate(1 minute)",
    "rate(5 minutes)",
    "rate(1 hour)",
    "rate(12 hours)",
    "rate(1 day)",
    "rate(7 days)",
    "rate(1 second)",
    "rate(30 seconds)",
    "rate(007 minutes)",
    "cron(0 10 * * ? *)",
    "cron(15 12 * * ? *)",
    "cron(0 18 ? * MON-FRI *)",
    "cron(0 8 1 * ? *)",
    "cron(0/15 * * * ? *)",
    "cron(0/10 * ? * MON-FRI *)",
    "cron(0/5 8-17 ? * MON-FRI *)",
    "cron(0 9 ? * 2#1 *)",
    "cron(0 9 L * ? *)",
    "cron(0 9 15W * ? *)",
    "cron(0 9 ? * 6L 2030-2032)",
    "cron( 0 10 * * ? * )",
    "cron(0  10 * *\t? *)",
    "cron(0 10 * * ?\n*)",
    "at(2030-11-20T13:00:00)",
    "at(2030-02-30T13:00:00)",
    "rate(0 minutes)",
    "rate(5 weeks)",
    "rate( 5 minutes)",
    "cron(0 10 * * *)",
    "every(5 minutes)",
]


def test_the_expression_regexes_accept_whatever_the_parser_accepts() -> None:
    kinds = re.compile(schedule_rules.EXPRESSION_KINDS)
    accepted = 0
    for text in EXPRESSIONS:
        try:
            parse_expression(text)
        except ScheduleExpressionError:
            continue
        accepted += 1
        assert kinds.search(text), text
        shape = schedule_rules.EXPRESSION_SHAPES[text.split("(", 1)[0]]
        assert re.search(shape, text), text
    assert accepted >= 20
    zone = re.compile(schedule_rules.TIME_ZONE_SHAPE)
    names = available_timezones()
    for name in names:
        try:
            time_zone(name)
        except ScheduleExpressionError:
            continue
        assert zone.search(name), name
    assert not zone.search("Paris time") and not zone.search("")
