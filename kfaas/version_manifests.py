"""The `FunctionVersion` and `FunctionAlias` kinds (ADR 024), validated once for every consumer.

A published version is a frozen copy of a Function's spec, `<function>.<N>`; an alias is routing
data, `<function>.<alias>`, naming a primary version and at most one weighted other. The gateway
writes both (PublishVersion, CreateAlias, …), `kubectl` may write them too, the operator builds a
version's instances and the gateway routes an alias's invocations, and `kfaas dev`'s folder store
refuses what the API server would. These models are that one definition: `crdgen` renders them
into the CRDs, and every model validator here is stated once more as CEL there (a test checks).

A version's template is a `FunctionSpec` whose code is pinned: inline files (copied), an image, or
a zip in the code store (ADR 025). A `code.path` (kfaas dev's folder) is zipped into the store
when publishing; a `code.configMap` cannot be published, as the gateway does not read ConfigMaps.

`spec.codeSha256` is the version's CodeSha256 as Lambda reports it, and must be the template's
code's (ADR 031): CEL cannot hash, so :func:`checked_code` is the check every place that serves a
version calls (kfaas dev's store refuses, the operator writes SpecValid False / CodeMismatch).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, Self, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import PydanticCustomError

from .code_digests import CodeDigest
from .lambda_code import CodeFacts, files_code, image_code, stored_code
from .lambda_shapes import InvalidParameter
from .lambda_versions import check_routing
from .manifests import (
    API_VERSION,
    DNS_LABEL_PATTERN,
    DnsLabel,
    DnsSubdomain,
    Function,
    FunctionSpec,
    ManifestError,
    Metadata,
    SourcedObject,
    validation_problems,
)

# Labels on every version and alias, so a function's are listed by selector.
FUNCTION_LABEL: Final = "kfaas.dev/function"
VERSION_LABEL: Final = "kfaas.dev/version"
ALIAS_LABEL: Final = "kfaas.dev/alias"

VERSION_PATTERN = r"^[1-9][0-9]*$"
QUALIFIER_PATTERN = r"^(\$LATEST|[1-9][0-9]*)$"
VersionNumber = Annotated[str, StringConstraints(max_length=10, pattern=VERSION_PATTERN)]
Weight = Annotated[float, Field(ge=0, le=1)]
Description = Annotated[str, StringConstraints(max_length=256)]


class _Model(BaseModel):
    """As kfaas.manifests' models: camelCase in YAML, strict, unknown fields are errors."""

    model_config = ConfigDict(
        extra="forbid", strict=True, populate_by_name=True, alias_generator=to_camel
    )


class ObjectMetadata(Metadata):
    """A version's or alias's name holds a dot (`<function>.<N>`): a DNS subdomain, not a label."""

    name: DnsSubdomain


class VersionTemplate(FunctionSpec):
    """The Function's spec as published: its code pinned, so the version never changes."""

    @model_validator(mode="after")
    def _code_pinned(self) -> Self:
        if self.code.path is not None or self.code.config_map is not None:
            raise PydanticCustomError(
                "kfaas_rule", "a version's code must be pinned: inline, image or zip"
            )
        return self


class FunctionVersionSpec(_Model):
    function_name: DnsLabel
    version: int = Field(ge=1)
    # PublishVersion's Description (Lambda: the version's own, beside the template's).
    description: Description = ""
    # Lambda's CodeSha256 of the template's code (base64 of a zip's sha256, hex for an image):
    # what reads of the version report; `checked_code` refuses one that is not the template's.
    code_sha256: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    # lambda_versions.config_sha256 of the template: publishing when it is unchanged is a no-op.
    config_sha256: Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
    template: VersionTemplate


class FunctionVersion(SourcedObject):
    api_version: Literal["kfaas.dev/v1alpha1"] = API_VERSION
    kind: Literal["FunctionVersion"] = "FunctionVersion"
    metadata: ObjectMetadata
    spec: FunctionVersionSpec
    # Written by the operator (the same status as a Function's).
    status: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _named_after_its_spec(self) -> Self:
        expected = f"{self.spec.function_name}.{self.spec.version}"
        if self.metadata.name != expected:
            raise PydanticCustomError(
                "kfaas_rule",
                f"metadata.name {self.metadata.name!r} must be {expected!r} "
                "(<spec.functionName>.<spec.version>)",
            )
        return self

    @property
    def function_key(self) -> str:
        """The Function it was published from, `namespace/name`."""
        return f"{self.metadata.namespace}/{self.spec.function_name}"

    def function(self) -> Function:
        """The version as the Function it froze (named as the function), for builders and runs."""
        return Function(
            metadata=Metadata(
                name=self.spec.function_name,
                namespace=self.metadata.namespace,
                labels=dict(self.metadata.labels),
                annotations=dict(self.metadata.annotations),
            ),
            spec=self.spec.template,
        )


class RoutingConfig(_Model):
    # Lambda: at most one other version, weight in [0, 1]; the rest goes to the primary.
    additional_version_weights: dict[VersionNumber, Weight] = Field(
        default_factory=dict, max_length=1
    )


class FunctionAliasSpec(_Model):
    function_name: DnsLabel
    # Lambda allows upper case and `_` too; here a DNS label (ADR 024, a listed difference).
    name: Annotated[str, StringConstraints(max_length=63, pattern=DNS_LABEL_PATTERN)]
    function_version: Annotated[str, StringConstraints(pattern=QUALIFIER_PATTERN)]
    description: Description = ""
    routing_config: RoutingConfig = Field(default_factory=RoutingConfig)

    @model_validator(mode="after")
    def _lambda_rules(self) -> Self:
        if self.name.isdigit():
            raise PydanticCustomError("kfaas_rule", "name must not be only digits (a version)")
        try:
            check_routing(self.function_version, self.routing_config.additional_version_weights)
        except InvalidParameter as exc:
            raise PydanticCustomError("kfaas_rule", "{reason}", {"reason": str(exc)}) from None
        return self

    @property
    def weights(self) -> dict[str, float]:
        return dict(self.routing_config.additional_version_weights)


class FunctionAlias(SourcedObject):
    api_version: Literal["kfaas.dev/v1alpha1"] = API_VERSION
    kind: Literal["FunctionAlias"] = "FunctionAlias"
    metadata: ObjectMetadata
    spec: FunctionAliasSpec

    @model_validator(mode="after")
    def _named_after_its_spec(self) -> Self:
        expected = f"{self.spec.function_name}.{self.spec.name}"
        if self.metadata.name != expected:
            raise PydanticCustomError(
                "kfaas_rule",
                f"metadata.name {self.metadata.name!r} must be {expected!r} "
                "(<spec.functionName>.<spec.name>)",
            )
        return self


_Kind = TypeVar("_Kind", FunctionVersion, FunctionAlias)


def _parse(model: type[_Kind], body: Mapping[str, Any], source: str | None) -> _Kind:
    metadata = body.get("metadata") or {}
    where = source or f"{model.__name__} {metadata.get('name')}"
    document = {
        "apiVersion": body.get("apiVersion", API_VERSION),
        "kind": model.__name__,
        "metadata": metadata,
        "spec": body.get("spec", {}),
    }
    if model is FunctionVersion and "status" in body:
        document["status"] = body["status"]
    try:
        return model.model_validate(document, by_alias=True, by_name=False)
    except ValidationError as exc:
        problems = [f"{where}: {problem}" for problem in validation_problems(exc)]
        raise ManifestError(where, problems) from None


def parse_version(body: Mapping[str, Any], source: str | None = None) -> FunctionVersion:
    """A FunctionVersion API object (or manifest) as the model; ``ManifestError`` if invalid."""
    return _parse(FunctionVersion, body, source)


def parse_alias(body: Mapping[str, Any], source: str | None = None) -> FunctionAlias:
    """A FunctionAlias API object (or manifest) as the model; ``ManifestError`` if invalid."""
    return _parse(FunctionAlias, body, source)


def template_code(template: FunctionSpec) -> CodeFacts:
    """Lambda's CodeSha256/CodeSize of a pinned template's code (inline, image or zip)."""
    code = template.code
    if code.inline is not None:
        return files_code({name: text.encode() for name, text in code.inline.items()})
    if code.image is not None:
        return image_code(code.image)
    if code.zip is not None:
        return stored_code(CodeDigest(code.zip.sha256), code.zip.size)
    raise ValueError("the code is not pinned (inline, image or zip)")


class CodeMismatch(ManifestError):
    """A FunctionVersion whose ``spec.codeSha256`` is not the CodeSha256 of its template's code."""


def checked_code(version: FunctionVersion) -> CodeFacts:
    """The version's code facts, once ``spec.codeSha256`` is found to be its template's code's.

    A version is immutable code under one digest: one applied by hand naming other code than its
    digest says is refused (``CodeMismatch``, naming both), never served under the wrong digest.
    """
    facts = template_code(version.spec.template)
    declared = version.spec.code_sha256
    if facts.sha256 != declared:
        where = f"FunctionVersion {version.metadata.name}"
        raise CodeMismatch(
            where,
            [
                f"{where}: spec.codeSha256: {declared!r} is not the CodeSha256 of the code "
                f"spec.template names ({facts.sha256!r}); a version's code never changes: "
                "publish a new version, or state the template's CodeSha256"
            ],
        )
    return facts


def routes_to(alias: FunctionAliasSpec, version: str) -> bool:
    """Whether invocations of the alias may run ``version`` (primary or weighted)."""
    weights = alias.routing_config.additional_version_weights
    return alias.function_version == version or version in weights
