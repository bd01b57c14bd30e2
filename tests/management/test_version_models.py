"""The FunctionVersion and FunctionAlias models: what they accept and refuse (the same rules the
CRDs state in CEL, exercised on the API server in test_version_objects_cluster.py), the Function a
version runs as, and Lambda's CodeSha256 of a pinned template."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from kfaas.code_digests import CodeDigest
from kfaas.lambda_code import files_code
from kfaas.lambda_versions import config_sha256
from kfaas.manifests import ManifestError
from kfaas.version_manifests import (
    CodeMismatch,
    checked_code,
    parse_alias,
    parse_version,
    routes_to,
    template_code,
)

TEMPLATE: dict[str, Any] = {
    "runtime": "python3.12",
    "handler": "app.handler",
    "code": {"inline": {"app.py": "def handler(event, context):\n    return 1\n"}},
}


def version(object_name: str = "fn.1", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": object_name, "namespace": "team"},
        "spec": {
            "functionName": "fn",
            "version": 1,
            "codeSha256": "c2hh",
            "configSha256": config_sha256(TEMPLATE),
            "template": TEMPLATE,
        }
        | spec,
    }


def alias(object_name: str = "fn.live", **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": object_name, "namespace": "team"},
        "spec": {"functionName": "fn", "name": "live", "functionVersion": "1"} | spec,
    }


def test_a_version_runs_as_the_function_it_froze() -> None:
    parsed = parse_version(version(description="first"))
    assert (parsed.key, parsed.function_key) == ("team/fn.1", "team/fn")
    function = parsed.function()
    assert (function.metadata.namespace, function.metadata.name) == ("team", "fn")
    assert function.spec.handler == "app.handler"
    assert function.spec.memory_mb == 128  # the template's defaults are a Function's


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        (version("fn.2"), "metadata.name 'fn.2' must be 'fn.1'"),
        (version(version=0), "spec.version: 0 is below the minimum 1"),
        (version(configSha256="nope"), "spec.configSha256"),
        (version(description="x" * 257), "spec.description"),
        (version(template=TEMPLATE | {"code": {"configMap": "fn-code"}}), "must be pinned"),
        (version(template=TEMPLATE | {"code": {"path": "/src"}}), "must be pinned"),
        (version(template=TEMPLATE | {"memoryMB": 64}), "spec.template.memoryMB"),
        (version(extra=1), "spec.extra"),
    ],
)
def test_versions_lambda_and_kubernetes_refuse(doc: dict[str, Any], words: str) -> None:
    with pytest.raises(ManifestError, match="FunctionVersion") as refused:
        parse_version(doc)
    assert words in str(refused.value)


def test_an_alias_with_a_canary() -> None:
    parsed = parse_alias(alias(routingConfig={"additionalVersionWeights": {"2": 0.1}}))
    assert parsed.spec.weights == {"2": 0.1}
    assert routes_to(parsed.spec, "1") and routes_to(parsed.spec, "2")
    assert not routes_to(parsed.spec, "3")
    assert parse_alias(alias(functionVersion="$LATEST")).spec.weights == {}


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        (alias("fn.other"), "must be 'fn.live'"),
        (alias("fn.123", name="123"), "only digits"),
        (alias("fn.Live", name="Live"), "DNS-1123 label"),
        (alias(functionVersion="latest"), "spec.functionVersion"),
        (alias(functionVersion="0"), "spec.functionVersion"),
        (
            alias(functionVersion="$LATEST", routingConfig={"additionalVersionWeights": {"2": 1}}),
            "$LATEST is not supported for weighted aliases",
        ),
        (alias(routingConfig={"additionalVersionWeights": {"1": 0.5}}), "already the alias's"),
        (alias(routingConfig={"additionalVersionWeights": {"2": 1.5}}), "above the maximum 1"),
        (alias(routingConfig={"additionalVersionWeights": {"2": -1}}), "below the minimum 0"),
        (
            alias(routingConfig={"additionalVersionWeights": {"02": 0.5}}),
            "additionalVersionWeights",
        ),
        (
            alias(routingConfig={"additionalVersionWeights": {"2": 0.1, "3": 0.1}}),
            "maximum of 1 items",
        ),
    ],
)
def test_aliases_lambda_and_kubernetes_refuse(doc: dict[str, Any], words: str) -> None:
    with pytest.raises(ManifestError, match="FunctionAlias") as refused:
        parse_alias(doc)
    assert words in str(refused.value)


def test_a_pinned_template_code_as_lambda_describes_it() -> None:
    inline = parse_version(version()).spec.template
    assert template_code(inline) == files_code(
        {"app.py": b"def handler(event, context):\n    return 1\n"}
    )
    digest = CodeDigest.of(b"zip bytes")
    zipped = TEMPLATE | {"code": {"zip": {"sha256": digest.hex, "size": 9}}}
    facts = template_code(parse_version(version(template=zipped)).spec.template)
    assert (facts.sha256, facts.size) == (digest.lambda_form, 9)
    image = TEMPLATE | {"code": {"image": f"registry/fn@sha256:{'a' * 64}"}}
    facts = template_code(parse_version(version(template=image)).spec.template)
    assert (facts.sha256, facts.size, facts.package_type) == ("a" * 64, 0, "Image")


def test_a_version_is_served_only_under_its_own_code_s_digest() -> None:
    """ADR 031: spec.codeSha256 is the template's code's CodeSha256, in Lambda's form."""
    inline = files_code({"app.py": b"def handler(event, context):\n    return 1\n"})
    assert checked_code(parse_version(version(codeSha256=inline.sha256))) == inline
    digest = CodeDigest.of(b"zip bytes")
    zipped = TEMPLATE | {"code": {"zip": {"sha256": digest.hex, "size": 9}}}
    stored = parse_version(version(template=zipped, codeSha256=digest.lambda_form))
    assert checked_code(stored).sha256 == digest.lambda_form
    image = TEMPLATE | {"code": {"image": f"registry/fn@sha256:{'a' * 64}"}}
    assert checked_code(parse_version(version(template=image, codeSha256="a" * 64))).size == 0
    # Other code than the digest says, or the right digest in another form: refused, naming both.
    for wrong, template in (
        ("c2hh", TEMPLATE),
        (inline.sha256, zipped),
        (digest.hex, zipped),
        (CodeDigest.of(b"other").lambda_form, zipped),
        ("b" * 64, image),
    ):
        parsed = parse_version(version(template=template, codeSha256=wrong))
        with pytest.raises(CodeMismatch) as refused:
            checked_code(parsed)
        [problem] = refused.value.problems
        assert problem.startswith("FunctionVersion fn.1: spec.codeSha256: ")
        assert (
            repr(wrong) in problem and repr(template_code(parsed.spec.template).sha256) in problem
        )
        assert isinstance(refused.value, ManifestError)  # every reader's refusal of a version


def test_the_reference_examples_are_valid() -> None:
    """docs/functions.md's FunctionVersion and FunctionAlias example, as written."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "functions.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, flags=re.S)
    [example] = [block for block in blocks if "kind: FunctionVersion" in block]
    version_doc, alias_doc = yaml.safe_load_all(example)
    assert parse_version(version_doc).spec.version == 3
    assert checked_code(parse_version(version_doc)).size == 1830  # its digest is its code's
    assert parse_alias(alias_doc).spec.weights == {"4": 0.1}
