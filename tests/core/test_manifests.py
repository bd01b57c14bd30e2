"""Manifests: defaults, every rule reported with its field path, and loading files and folders."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from kfaas.manifests import (
    EventSourceMapping,
    Function,
    ManifestError,
    load_manifests,
    parse_manifest,
)


def function_doc(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "thumbnail", "namespace": "media"},
        "spec": {"runtime": "python3.12", "handler": "app.handler", "code": {"image": "x:1"}}
        | spec,
    }


def mapping_doc(**spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "EventSourceMapping",
        "metadata": {"name": "uploads"},
        "spec": {"functionName": "thumbnail", "redis": {"url": "redis://r:6379/0", "stream": "s"}}
        | spec,
    }


def problems_of(doc: dict[str, Any]) -> list[str]:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(doc)
    return caught.value.problems


class TestDefaults:
    def test_function_defaults_are_designs(self) -> None:
        fn = parse_manifest(function_doc())
        assert isinstance(fn, Function)
        spec = fn.spec
        assert (spec.memory_mb, spec.timeout_seconds) == (128, 3)
        assert (spec.concurrency.per_instance, spec.concurrency.reserved) == (1, None)
        assert spec.concurrency.provisioned == 0
        assert spec.scaling.min_instances == 0
        assert spec.scaling.max_instances == 100
        assert spec.scaling.scale_to_zero_after_seconds == 300
        assert spec.scaling.target_utilization == 0.7
        assert spec.async_.maximum_retry_attempts == 2
        assert spec.async_.maximum_event_age_seconds == 21600
        assert (spec.http.enabled, spec.http.auth) == (False, "NONE")
        assert spec.tracing.mode == "PassThrough"
        assert fn.key == "media/thumbnail"

    def test_mapping_defaults_are_designs(self) -> None:
        esm = parse_manifest(mapping_doc())
        assert isinstance(esm, EventSourceMapping)
        spec = esm.spec
        assert spec.batch_size == 100
        assert spec.maximum_batching_window_seconds == 0.5
        assert (spec.maximum_retry_attempts, spec.maximum_record_age_seconds) == (-1, -1)
        assert spec.bisect_batch_on_function_error is False
        assert spec.enabled is True
        assert spec.parallelism == 1
        assert spec.redis is not None and spec.redis.starting_position == "LATEST"
        assert esm.key == "default/uploads"

    def test_full_design_example_parses(self) -> None:
        doc = function_doc(
            code={"inline": {"app.py": "def handler(event, context): ..."}},
            memoryMB=256,
            environment={"LOG_LEVEL": "info"},
            envFrom=[{"secretRef": {"name": "thumbnail-secrets"}}],
            concurrency={"perInstance": 4, "reserved": 10, "provisioned": 1},
            scaling={"minInstances": 1, "maxInstances": 5, "scaleToZeroAfterSeconds": 30},
            **{
                "async": {
                    "maximumRetryAttempts": 0,
                    "onSuccess": {"kafka": {"topic": "done"}},
                    "onFailure": {"redis": {"stream": "failures", "url": "redis://r:6379/0"}},
                }
            },
            http={"enabled": True, "auth": "NONE"},
            tracing={"mode": "Active"},
            podTemplate={"nodeSelector": {"disk": "ssd"}},
        )
        fn = parse_manifest(doc)
        assert isinstance(fn, Function)
        assert fn.spec.concurrency.per_instance == 4
        assert fn.spec.async_.on_failure is not None
        assert fn.spec.async_.on_failure.redis is not None
        assert fn.spec.env_from[0].secret_ref is not None

    def test_dump_by_alias_round_trips_and_leaves_source_out(self) -> None:
        fn = parse_manifest(function_doc(memoryMB=512), source="<string>")
        dumped = fn.model_dump(by_alias=True, exclude_none=True)
        assert "source" not in dumped
        assert dumped["spec"]["memoryMB"] == 512
        assert dumped["spec"]["async"]["maximumRetryAttempts"] == 2
        assert parse_manifest(dumped) == fn

    def test_objects_read_back_from_the_cluster_parse(self) -> None:
        doc = function_doc()
        doc["metadata"] |= {"uid": "1234", "resourceVersion": "7", "generation": 2}
        doc["status"] = {"conditions": [{"type": "Ready", "status": "True"}]}
        assert isinstance(parse_manifest(doc), Function)


class TestProblems:
    @pytest.mark.parametrize(
        ("spec", "problem"),
        [
            ({"memoryMB": 64}, "spec.memoryMB: 64 is below the minimum 128"),
            ({"memoryMB": 20000}, "spec.memoryMB: 20000 is above the maximum 10240"),
            ({"timeoutSeconds": 0}, "spec.timeoutSeconds: 0 is below the minimum 1"),
            ({"timeoutSeconds": "3"}, 'spec.timeoutSeconds: "3" must be an integer'),
            ({"timeoutSeconds": 1.5}, "spec.timeoutSeconds: 1.5 must be an integer"),
            (
                {"runtime": "python2.7"},
                'spec.runtime: "python2.7" must be one of python3.11, '
                "python3.12, python3.13, provided",
            ),
            ({"memory_mb": 256}, "spec.memory_mb: is not a known field"),
            (
                {"concurrency": {"perInstance": 0}},
                "spec.concurrency.perInstance: 0 is below the minimum 1",
            ),
            (
                {"concurrency": {"reserved": -1}},
                "spec.concurrency.reserved: -1 is below the minimum 0",
            ),
            (
                {"scaling": {"targetUtilization": 0}},
                "spec.scaling.targetUtilization: 0 must be above 0",
            ),
            (
                {"scaling": {"targetUtilization": 1.5}},
                "spec.scaling.targetUtilization: 1.5 is above the maximum 1",
            ),
            (
                {"async": {"maximumRetryAttempts": 3}},
                "spec.async.maximumRetryAttempts: 3 is above the maximum 2",
            ),
            (
                {"async": {"maximumEventAgeSeconds": 59}},
                "spec.async.maximumEventAgeSeconds: 59 is below the minimum 60",
            ),
            ({"http": {"enabled": "yes"}}, 'spec.http.enabled: "yes" must be true or false'),
            (
                {"http": {"auth": "IAM"}},
                'spec.http.auth: "IAM" must be one of NONE, API_KEY, JWT, AWS_IAM',
            ),
            ({"environment": {"LOG_LEVEL": 3}}, "spec.environment.LOG_LEVEL: 3 must be a string"),
            (
                {"code": {}},
                "spec.code: exactly one of inline, configMap, image, path, zip must be set",
            ),
            (
                {"code": {"image": "x", "path": "."}},
                "spec.code: exactly one of inline, configMap, image, path, zip must be set",
            ),
            (
                {"code": {"inline": {"../app.py": ""}}},
                'spec.code.inline.../app.py: "../app.py"'
                " must be a file name made of letters, digits, '-', '_' and '.'",
            ),
            (
                {"async": {"onFailure": {"kafka": {"topic": "t"}, "redis": {"stream": "s"}}}},
                "spec.async.onFailure: exactly one of kafka, redis, function must be set",
            ),
            (
                {"scaling": {"minInstances": 5, "maxInstances": 2}},
                "spec.scaling: minInstances (5) must not be above maxInstances (2)",
            ),
            (
                {"concurrency": {"provisioned": 3}, "scaling": {"maxInstances": 2}},
                "spec: concurrency.provisioned (3) must not be above scaling.maxInstances (2)",
            ),
        ],
    )
    def test_function_rules_name_field_and_rule(self, spec: dict[str, Any], problem: str) -> None:
        assert problems_of(function_doc(**spec)) == [f"<string>: {problem}"]

    @pytest.mark.parametrize(
        ("spec", "problem"),
        [
            ({"batchSize": 0}, "spec.batchSize: 0 is below the minimum 1"),
            ({"batchSize": 10001}, "spec.batchSize: 10001 is above the maximum 10000"),
            (
                {"maximumBatchingWindowSeconds": 301},
                "spec.maximumBatchingWindowSeconds: 301 is above the maximum 300",
            ),
            ({"maximumRetryAttempts": -2}, "spec.maximumRetryAttempts: -2 is below the minimum -1"),
            (
                {"maximumRecordAgeSeconds": 604801},
                "spec.maximumRecordAgeSeconds: 604801 is above the maximum 604800",
            ),
            ({"parallelism": 0}, "spec.parallelism: 0 is below the minimum 1"),
            (
                {"kafka": {"bootstrapServers": "k:9092", "topic": "t"}},
                "spec: exactly one of kafka, redis must be set",
            ),
            (
                {"functionResponseTypes": ["Other"]},
                'spec.functionResponseTypes[0]: "Other" must be one of ReportBatchItemFailures',
            ),
            (
                {"filterCriteria": {"filters": [{"pattern": "[1]"}]}},
                "spec.filterCriteria.filters[0].pattern: must be a JSON object",
            ),
            (
                {"filterCriteria": {"filters": [{"pattern": "{}"}] * 6}},
                "spec.filterCriteria.filters: has more than the maximum of 5 items",
            ),
            (
                {"destinationConfig": {"onFailure": {"function": {"name": "x"}}}},
                "spec.destinationConfig.onFailure.function: is not a known field",
            ),
        ],
    )
    def test_mapping_rules_name_field_and_rule(self, spec: dict[str, Any], problem: str) -> None:
        assert problems_of(mapping_doc(**spec)) == [f"<string>: {problem}"]

    def test_missing_fields_are_required(self) -> None:
        doc = function_doc()
        del doc["spec"]["handler"]
        doc["metadata"] = {}
        assert problems_of(doc) == [
            "<string>: metadata.name: is required",
            "<string>: spec.handler: is required",
        ]

    @pytest.mark.parametrize("name", ["Thumbnail", "-a", "a-", "a_b", "a" * 64, ""])
    def test_names_must_be_dns_labels(self, name: str) -> None:
        doc = function_doc()
        doc["metadata"]["name"] = name
        [problem] = problems_of(doc)
        assert problem.startswith("<string>: metadata.name: ")

    def test_every_problem_is_reported_at_once(self) -> None:
        problems = problems_of(function_doc(memoryMB=1, timeoutSeconds=1000, bogus=1))
        assert len(problems) == 3

    @pytest.mark.parametrize(
        ("api_version", "kind", "problem"),
        [
            ("kfaas.dev/v1", "Function", 'apiVersion: "kfaas.dev/v1" must be kfaas.dev/v1alpha1'),
            (
                "kfaas.dev/v1alpha1",
                "Func",
                'kind: "Func" must be one of Function, EventSourceMapping',
            ),
        ],
    )
    def test_unknown_kind_or_version(self, api_version: str, kind: str, problem: str) -> None:
        doc = function_doc() | {"apiVersion": api_version, "kind": kind}
        with pytest.raises(ManifestError) as caught:
            parse_manifest(doc, source="fns.yaml")
        assert caught.value.source == "fns.yaml"
        assert caught.value.problems == [f"fns.yaml: {problem}"]
        assert str(caught.value) == f"fns.yaml: {problem}"


class TestSchema:
    def test_json_schema_carries_ranges_and_aliases(self) -> None:
        schema = Function.model_json_schema(by_alias=True)
        spec = schema["$defs"]["FunctionSpec"]["properties"]
        assert spec["memoryMB"]["minimum"] == 128
        assert spec["memoryMB"]["maximum"] == 10240
        assert "async" in spec
        assert "source" not in schema["properties"]
        assert "batchSize" in json.dumps(EventSourceMapping.model_json_schema(by_alias=True))


class TestLoading:
    def write(self, path: Path, text: str) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        return path

    FUNCTION = """
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {name: %s}
spec: {runtime: python3.12, handler: app.handler, code: {path: ./src}}
"""

    def test_folders_are_searched_recursively_in_order(self, tmp_path: Path) -> None:
        self.write(tmp_path / "b.yml", self.FUNCTION % "b")
        self.write(tmp_path / "a" / "z.yaml", self.FUNCTION % "a")
        self.write(tmp_path / "notes.txt", "not yaml: [")
        names = [m.metadata.name for m in load_manifests([tmp_path])]
        assert names == ["a", "b"]

    def test_hidden_folders_below_a_searched_folder_are_skipped(self, tmp_path: Path) -> None:
        # kfaas dev's state (.kfaas/objects/…) holds Function objects that are not manifests.
        self.write(tmp_path / "f.yaml", self.FUNCTION % "f")
        self.write(tmp_path / ".kfaas" / "objects" / "s.yaml", self.FUNCTION % "stored")
        self.write(tmp_path / "a" / ".venv" / "x.yaml", "not: [yaml")
        assert [m.metadata.name for m in load_manifests([tmp_path])] == ["f"]
        # Named itself, a hidden folder is searched.
        names = [m.metadata.name for m in load_manifests([tmp_path / ".kfaas"])]
        assert names == ["stored"]

    def test_multi_document_files_skip_empty_and_foreign_documents(self, tmp_path: Path) -> None:
        text = (
            "---\n"
            + self.FUNCTION % "one"
            + "---\n"
            + "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n"
            + "---\n"
            + "apiVersion: fission.io/v1\nkind: Function\nmetadata: {name: f}\n"
            + "---\n"
            + "apiVersion: kfaas.dev/v1alpha1\nkind: EventSourceMapping\nmetadata: {name: m}\n"
            + "spec: {functionName: one, kafka: {bootstrapServers: 'k:9092', topic: t}}\n"
            + "---\n"
        )
        path = self.write(tmp_path / "all.yaml", text)
        manifests = load_manifests([str(path)])
        assert [m.kind for m in manifests] == ["Function", "EventSourceMapping"]
        assert manifests[0].source == f"{path} (document 1)"

    def test_code_path_is_resolved_against_the_manifest_file(self, tmp_path: Path) -> None:
        path = self.write(tmp_path / "fns" / "fn.yaml", self.FUNCTION % "f")
        [fn] = load_manifests([path])
        assert isinstance(fn, Function)
        assert fn.code_root() == tmp_path / "fns" / "src"
        assert fn.spec.code.path == str(tmp_path / "fns" / "src")

    def test_code_root_is_none_for_other_sources(self) -> None:
        fn = parse_manifest(function_doc())
        assert isinstance(fn, Function)
        assert fn.code_root() is None

    def test_problems_from_every_file_are_collected(self, tmp_path: Path) -> None:
        bad = self.write(tmp_path / "bad.yaml", (self.FUNCTION % "x").replace("python3.12", "go"))
        broken = self.write(tmp_path / "broken.yaml", "ok: 1\na: b: c\n")
        self.write(tmp_path / "good.yaml", self.FUNCTION % "good")
        with pytest.raises(ManifestError) as caught:
            load_manifests([tmp_path, tmp_path / "missing"])
        problems = caught.value.problems
        assert problems[0] == f"{tmp_path / 'missing'}: no such file or folder"
        assert problems[1].startswith(f'{bad}: spec.runtime: "go" must be one of')
        assert problems[2].startswith(f"{broken}: line 2, column 5: ")
        assert "not valid YAML" in problems[2]
        assert caught.value.source == f"{tmp_path / 'missing'}, {bad}, {broken}"
        assert str(caught.value) == "\n".join(problems)

    def test_duplicates_are_reported(self, tmp_path: Path) -> None:
        first = self.write(tmp_path / "a.yaml", self.FUNCTION % "same")
        second = self.write(tmp_path / "b.yaml", self.FUNCTION % "same")
        with pytest.raises(ManifestError) as caught:
            load_manifests([tmp_path])
        assert caught.value.problems == [
            f"{second}: Function default/same is already defined in {first}"
        ]

    def test_typo_in_our_kind_is_reported_not_skipped(self, tmp_path: Path) -> None:
        path = self.write(tmp_path / "a.yaml", (self.FUNCTION % "f").replace("Function", "Fn"))
        with pytest.raises(ManifestError) as caught:
            load_manifests([path])
        assert caught.value.problems == [
            f'{path}: kind: "Fn" must be one of Function, EventSourceMapping'
        ]
