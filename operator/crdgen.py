"""The CustomResourceDefinitions, generated from the pydantic models: one source of truth.

`kfaas dev` validates manifests with the models in ``kfaas.manifests``; the API server validates
them with the CRDs' openAPIV3Schema. Rendering the second from the first keeps them from drifting:
ranges, enums, patterns and defaults come straight from the models' JSON schema, turned into a
*structural* schema (no ``$ref``, no ``anyOf`` with null, ``exclusiveMinimum`` as a flag, map key
patterns as CEL), and every cross-field rule a model enforces in Python (a ``model_validator``) is
stated once more as a CEL ``x-kubernetes-validations`` rule in ``CROSS_FIELD_RULES`` — a test checks
that no model validator lacks its rule.

``python -m kfaas.operator.crdgen [--check]`` writes (or checks) ``crds/`` and the chart's copy.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any, Final

import yaml
from pydantic import BaseModel

from kfaas.manifests import (
    API_GROUP,
    ApiKeySource,
    Code,
    Cors,
    Destination,
    EnvFromSource,
    EventSourceMappingSpec,
    FunctionSpec,
    Http,
    Jwt,
    JwtKeySource,
    KafkaDestination,
    KafkaSource,
    Scaling,
    StreamDestination,
)
from kfaas.podtemplate import CEL_RULES as POD_TEMPLATE_RULES
from kfaas.schedule_manifests import ScheduleSpec, ScheduleStatus
from kfaas.version_manifests import (
    FunctionAlias,
    FunctionAliasSpec,
    FunctionVersion,
    FunctionVersionSpec,
    VersionTemplate,
)

from .schedule_rules import SCHEDULE_RULES
from .status import FunctionStatus, MappingStatus

VERSION: Final = "v1alpha1"
Schema = dict[str, Any]


def _exactly_one(*fields: str) -> dict[str, str]:
    present = ", ".join(f"has(self.{name})" for name in fields)
    return {
        "rule": f"[{present}].filter(x, x).size() == 1",
        "message": f"exactly one of {', '.join(fields)} must be set",
    }


def _auth_needs(mode: str, field: str) -> list[dict[str, str]]:
    """`http.auth` MODE requires FIELD, and FIELD is refused with any other mode."""
    auth = "(has(self.auth) ? self.auth : 'NONE')"
    return [
        {
            "rule": f"{auth} != '{mode}' || has(self.{field})",
            "message": f"auth {mode} requires {field}",
        },
        {
            "rule": f"{auth} == '{mode}' || !has(self.{field})",
            "message": f"{field} is only used with auth {mode}",
        },
    ]


def _dev_only_file() -> dict[str, str]:
    return {
        "rule": "!has(self.file)",
        "message": "file is for local `kfaas dev` only; in a cluster use a Secret or ConfigMap",
    }


def _secured() -> dict[str, str]:
    """A password or client certificate only over TLS (kfaas.manifests._secured_rules)."""
    return {
        "rule": "!has(self.auth) || has(self.tls) || self.auth.mechanism.startsWith('SASL_SCRAM')",
        "message": "auth.mechanism BASIC_AUTH and CLIENT_CERTIFICATE_TLS_AUTH require tls",
    }


# The model validators of kfaas.manifests, as CEL. Keyed by the model whose schema carries them.
CROSS_FIELD_RULES: Final[dict[type[BaseModel], list[dict[str, str]]]] = {
    Code: [
        _exactly_one("inline", "configMap", "image", "path", "zip"),
        {
            "rule": "!has(self.path)",
            "message": "path is for local `kfaas dev` only; in a cluster use inline, configMap, "
            "image or zip",
        },
    ],
    EnvFromSource: [_exactly_one("secretRef", "configMapRef")],
    Scaling: [
        {
            "rule": "self.minInstances <= self.maxInstances",
            "message": "minInstances must not be above maxInstances",
        }
    ],
    Destination: [_exactly_one("kafka", "redis", "function")],
    KafkaSource: [_secured()],
    KafkaDestination: [
        {
            "rule": "has(self.bootstrapServers) || (!has(self.tls) && !has(self.auth))",
            "message": "tls and auth are only used with bootstrapServers",
        },
        _secured(),
    ],
    StreamDestination: [_exactly_one("kafka", "redis")],
    FunctionSpec: [
        {
            "rule": "self.concurrency.provisioned <= self.scaling.maxInstances",
            "message": "concurrency.provisioned must not be above scaling.maxInstances",
        }
    ],
    EventSourceMappingSpec: [_exactly_one("kafka", "redis")],
    # A version's template: a FunctionSpec (its rule too) whose code is pinned.
    VersionTemplate: [
        {
            "rule": "self.concurrency.provisioned <= self.scaling.maxInstances",
            "message": "concurrency.provisioned must not be above scaling.maxInstances",
        },
        {
            "rule": "!has(self.code.path) && !has(self.code.configMap)",
            "message": "a version's code must be pinned: inline, image or zip",
        },
    ],
    # Lambda's alias rules (kfaas.lambda_versions.check_routing); at most one weight and each
    # weight in [0, 1] are the schema's maxProperties, minimum and maximum.
    FunctionAliasSpec: [
        {
            "rule": "!self.name.matches('^[0-9]+$')",
            "message": "name must not be only digits (a version)",
        },
        {
            "rule": "self.functionVersion != '$LATEST' "
            "|| self.routingConfig.additionalVersionWeights.size() == 0",
            "message": "$LATEST is not supported for weighted aliases",
        },
        {
            "rule": "!(self.functionVersion in self.routingConfig.additionalVersionWeights)",
            "message": "a weighted version must not be the alias's functionVersion",
        },
    ],
    Http: [*_auth_needs("API_KEY", "apiKey"), *_auth_needs("JWT", "jwt")],
    Cors: [
        {
            "rule": "!has(self.allowCredentials) || !self.allowCredentials "
            "|| !has(self.allowOrigins) || !('*' in self.allowOrigins)",
            "message": "allowCredentials true needs allowOrigins to name origins, not *",
        }
    ],
    ApiKeySource: [_exactly_one("secretRef", "file"), _dev_only_file()],
    JwtKeySource: [_exactly_one("secretRef", "configMapRef", "file"), _dev_only_file()],
    Jwt: [
        _exactly_one("jwksUrl", "keys"),
        {
            # The models let kfaas dev fetch from http://localhost; a cluster gateway never does.
            "rule": "!has(self.jwksUrl) || self.jwksUrl.startsWith('https://')",
            "message": "jwksUrl must be https:// in a cluster (http://localhost is for kfaas dev)",
        },
    ],
    **POD_TEMPLATE_RULES,
    **SCHEDULE_RULES,
}

# The top-level models' validators (the object's name is its spec's), on the whole object.
ROOT_RULES: Final[dict[type[BaseModel], list[dict[str, str]]]] = {
    FunctionVersion: [
        {
            # Not `name == functionName + '.' + string(version)`: the API server cannot bound the
            # size of string(int) and refuses that rule's estimated cost; a comparison can.
            "rule": "self.metadata.name.startsWith(self.spec.functionName + '.') && "
            "self.metadata.name.substring(size(self.spec.functionName) + 1) "
            "== string(self.spec.version)",
            "message": "metadata.name must be <spec.functionName>.<spec.version>",
        }
    ],
    FunctionAlias: [
        {
            "rule": "self.metadata.name == self.spec.functionName + '.' + self.spec.name",
            "message": "metadata.name must be <spec.functionName>.<spec.name>",
        }
    ],
}
# A transition rule, not a model's: the folder store of kfaas dev refuses the same replace.
IMMUTABLE_SPEC: Final = {
    "rule": "self == oldSelf",
    "message": "a published version is immutable: publish a new version instead",
}

# Kubernetes needs bounds to estimate the cost of a CEL rule over a map's keys.
_MAX_MAP_KEYS = 1000
_MAX_KEY_LENGTH = 253


def _model_rules(schema: Schema, models: dict[str, type[BaseModel]]) -> list[dict[str, str]]:
    title = schema.get("title")
    model = models.get(title) if isinstance(title, str) else None
    return list(CROSS_FIELD_RULES.get(model, [])) if model is not None else []


def _structural(
    schema: Schema, defs: dict[str, Schema], models: dict[str, type[BaseModel]]
) -> Schema:
    """One JSON-schema node as a Kubernetes structural schema node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return _structural(merged, defs, models)
    if "anyOf" in schema:
        branches = [branch for branch in schema["anyOf"] if branch.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot express {schema} in a structural schema")
        rest = {k: v for k, v in schema.items() if k != "anyOf"}
        optional = _structural({**branches[0], **rest}, defs, models)
        # Not nullable: the API server then prunes an explicit null, which is what None means
        # to the models (absent), so `has()` in the CEL rules agrees with pydantic.
        optional.pop("default", None)
        return optional

    node: Schema = {}
    kind = schema.get("type")
    if kind is not None:
        node["type"] = kind
    if "const" in schema:  # a single-value Literal
        node["enum"] = [schema["const"]]
    for key in (
        "description",
        "enum",
        "pattern",
        "minLength",
        "maxLength",
        "minItems",
        "maxItems",
        "maxProperties",
        "default",
    ):
        if key in schema:
            node[key] = schema[key]
    for bound, flag in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if bound in schema:
            node[bound] = schema[bound]
        if flag in schema:
            node[bound] = schema[flag]
            node[flag] = True
    if kind == "array":
        node["items"] = _structural(schema.get("items", {}), defs, models)
    if kind == "object":
        _object(node, schema, defs, models)
    return node


def _object(
    node: Schema, schema: Schema, defs: dict[str, Schema], models: dict[str, type[BaseModel]]
) -> None:
    rules = _model_rules(schema, models)
    if "properties" in schema:
        node["properties"] = {
            name: _structural(child, defs, models) for name, child in schema["properties"].items()
        }
        for name, child in node["properties"].items():
            # Nested objects default to {} so the API server fills their own defaults in,
            # exactly as pydantic's default_factory does.
            original = schema["properties"][name]
            has_factory = "default" not in original and name not in schema.get("required", [])
            optional = "anyOf" in original
            if has_factory and not optional and child.get("type") in ("object", "array"):
                child["default"] = _filled_default(child)
        if schema.get("required"):
            node["required"] = list(schema["required"])
    elif "patternProperties" in schema or "propertyNames" in schema:
        patterns = schema.get("patternProperties") or {}
        ((pattern, values),) = patterns.items() if patterns else ((None, {}),)
        if pattern is None:
            pattern = schema["propertyNames"]["pattern"]
            values = schema.get("additionalProperties", {})
        node["additionalProperties"] = _structural(values, defs, models)
        node["maxProperties"] = min(node.get("maxProperties", _MAX_MAP_KEYS), _MAX_MAP_KEYS)
        escaped = pattern.replace("\\", "\\\\")
        rules.append(
            {
                "rule": f"self.all(key, size(key) <= {_MAX_KEY_LENGTH} "
                f"&& key.matches('{escaped}'))",
                "message": f"every key must match {pattern} (at most {_MAX_KEY_LENGTH} characters)",
            }
        )
    elif schema.get("additionalProperties") is True or schema.get("additionalProperties") is None:
        # Free-form (podTemplate.affinity): Kubernetes validates it when the pod is created.
        node["x-kubernetes-preserve-unknown-fields"] = True
    else:
        node["additionalProperties"] = _structural(schema["additionalProperties"], defs, models)
    if rules:
        node["x-kubernetes-validations"] = rules


def _filled_default(node: Schema) -> Any:
    """The default of a defaulted object with its own fields' defaults in it.

    The API server checks a default against the CEL rules as it is, without defaulting inside
    it, so `scaling: {}` would fail `self.minInstances <= self.maxInstances`.
    """
    if node.get("type") == "array":
        return []
    # Copies: a shared object would be written out as a YAML anchor and alias.
    return {
        name: copy.deepcopy(child["default"])
        for name, child in node.get("properties", {}).items()
        if "default" in child
    }


def _models() -> dict[str, type[BaseModel]]:
    return {model.__name__: model for model in CROSS_FIELD_RULES}


def spec_schema(model: type[BaseModel]) -> Schema:
    """The structural schema of a spec or status model."""
    raw = model.model_json_schema(by_alias=True, mode="validation")
    return _structural(raw, raw.get("$defs", {}), _models())


def _condition_column() -> dict[str, Any]:
    return {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    }


def _crd(
    kind: str,
    description: str,
    plural: str,
    short_names: list[str],
    spec: type[BaseModel],
    status: type[BaseModel] | None,
    columns: list[dict[str, Any]],
    *,
    model: type[BaseModel] | None = None,
    spec_rules: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    spec_node = spec_schema(spec)
    if spec_rules:
        spec_node["x-kubernetes-validations"] = [
            *spec_node.get("x-kubernetes-validations", []),
            *spec_rules,
        ]
    properties: Schema = {
        "apiVersion": {"type": "string"},
        "kind": {"type": "string"},
        "metadata": {"type": "object"},
        "spec": spec_node,
    }
    if status is not None:
        properties["status"] = spec_schema(status)
    root: Schema = {
        "type": "object",
        "description": description,
        "required": ["spec"],
        "properties": properties,
    }
    if model is not None and model in ROOT_RULES:
        root["x-kubernetes-validations"] = list(ROOT_RULES[model])
    version: Schema = {
        "name": VERSION,
        "served": True,
        "storage": True,
        # An alias has no status: the gateway reads it, nothing reconciles it.
        **({"subresources": {"status": {}}} if status is not None else {}),
        "additionalPrinterColumns": [
            *columns,
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        "schema": {"openAPIV3Schema": root},
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {
            "name": f"{plural}.{API_GROUP}",
            "labels": {"app.kubernetes.io/part-of": "kfaas"},
        },
        "spec": {
            "group": API_GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short_names,
                "categories": ["kfaas", "all"],
            },
            "versions": [version],
        },
    }


def function_crd() -> dict[str, Any]:
    return _crd(
        "Function",
        "A function kfaas runs on demand; every field is described in docs/functions.md.",
        "functions",
        ["fn", "fns"],
        FunctionSpec,
        FunctionStatus,
        [
            {"name": "Runtime", "type": "string", "jsonPath": ".spec.runtime"},
            _condition_column(),
            {"name": "Instances", "type": "integer", "jsonPath": ".status.readyInstances"},
        ],
    )


def mapping_crd() -> dict[str, Any]:
    return _crd(
        "EventSourceMapping",
        "Feeds a Kafka topic or Redis stream to a Function; fields in docs/functions.md.",
        "eventsourcemappings",
        ["esm"],
        EventSourceMappingSpec,
        MappingStatus,
        [
            {"name": "Function", "type": "string", "jsonPath": ".spec.functionName"},
            {"name": "Source", "type": "string", "jsonPath": ".status.source"},
            {"name": "State", "type": "string", "jsonPath": ".status.state"},
            {"name": "Lag", "type": "integer", "jsonPath": ".status.lag"},
        ],
    )


def version_crd() -> dict[str, Any]:
    return _crd(
        "FunctionVersion",
        "A published, immutable version of a Function (PublishVersion); see docs/functions.md.",
        "functionversions",
        ["fnv"],
        FunctionVersionSpec,
        FunctionStatus,
        [
            {"name": "Function", "type": "string", "jsonPath": ".spec.functionName"},
            {"name": "Version", "type": "integer", "jsonPath": ".spec.version"},
            _condition_column(),
            {"name": "Instances", "type": "integer", "jsonPath": ".status.readyInstances"},
            {
                "name": "Description",
                "type": "string",
                "jsonPath": ".spec.description",
                "priority": 1,
            },
        ],
        model=FunctionVersion,
        spec_rules=[IMMUTABLE_SPEC],
    )


def alias_crd() -> dict[str, Any]:
    return _crd(
        "FunctionAlias",
        "A name for a version of a Function, with an optional weighted second version; "
        "see docs/functions.md.",
        "functionaliases",
        ["fna"],
        FunctionAliasSpec,
        None,
        [
            {"name": "Function", "type": "string", "jsonPath": ".spec.functionName"},
            {"name": "Version", "type": "string", "jsonPath": ".spec.functionVersion"},
            {
                "name": "Weights",
                "type": "string",
                "jsonPath": ".spec.routingConfig.additionalVersionWeights",
            },
            {
                "name": "Description",
                "type": "string",
                "jsonPath": ".spec.description",
                "priority": 1,
            },
        ],
        model=FunctionAlias,
    )


def schedule_crd() -> dict[str, Any]:
    return _crd(
        "Schedule",
        "Invokes a Function at the times of an EventBridge Scheduler expression; see "
        "docs/schedules.md.",
        "schedules",
        ["sched"],
        ScheduleSpec,
        ScheduleStatus,
        [
            {"name": "Expression", "type": "string", "jsonPath": ".spec.scheduleExpression"},
            {"name": "Function", "type": "string", "jsonPath": ".spec.target.functionName"},
            {"name": "State", "type": "string", "jsonPath": ".status.state"},
            # A string, not a date: kubectl shows a date as an age, and a future one as
            # "<invalid>".
            {"name": "Next", "type": "string", "jsonPath": ".status.nextFireTime"},
            {"name": "Last", "type": "date", "jsonPath": ".status.lastTick", "priority": 1},
            {
                "name": "Description",
                "type": "string",
                "jsonPath": ".spec.description",
                "priority": 1,
            },
        ],
    )


_SOURCES = {
    "FunctionVersion": "version_manifests",
    "FunctionAlias": "version_manifests",
    "Schedule": "schedule_manifests",
}


def _header(crd: dict[str, Any]) -> str:
    """Names the module the CRD's models are in."""
    source = _SOURCES.get(crd["spec"]["names"]["kind"], "manifests")
    return (
        f"# Generated by `python -m kfaas.operator.crdgen` from kfaas/{source}.py; do not edit.\n"
    )


def rendered() -> dict[str, str]:
    """File name → YAML text of every CRD kfaas defines."""
    return {
        f"{crd['metadata']['name']}.yaml": _header(crd)
        + yaml.safe_dump(crd, sort_keys=False, width=100)
        for crd in (function_crd(), mapping_crd(), version_crd(), alias_crd(), schedule_crd())
    }


def targets(root: Path) -> list[Path]:
    """Where the CRDs are written: `crds/` for kubectl, the chart's `crds/` for Helm."""
    return [root / "crds", root / "charts" / "kfaas" / "crds"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kfaas.operator.crdgen", description=__doc__)
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="repository root")
    parser.add_argument("--check", action="store_true", help="fail if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for folder in targets(args.root):
        for name, text in rendered().items():
            path = folder / name
            if args.check:
                if not path.exists() or path.read_text() != text:
                    stale.append(str(path))
            else:
                folder.mkdir(parents=True, exist_ok=True)
                path.write_text(text)
    if stale:
        print(f"out of date (run python -m kfaas.operator.crdgen): {', '.join(stale)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
