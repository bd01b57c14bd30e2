"""The `Function` and `EventSourceMapping` manifests, validated once for every consumer.

`kfaas dev`, the operator and the CRD schema all read the same YAML, so they must agree on what a
valid manifest is and say what is wrong in the same words. These pydantic models are that single
definition: field names and defaults are exactly DESIGN.md's, ranges are `Field` constraints (so
`model_json_schema()` carries them into the CRD's openAPIV3Schema), and every validation failure is
turned into one line naming the field path and the rule, e.g.
`fns.yaml: spec.memoryMB: 64 is below the minimum 128`.

Validation is strict (no "5" for 5): the Kubernetes API server checks the CRD schema the same way,
so a manifest that `kfaas dev` accepts is one `kubectl apply` accepts too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Final, Literal, Self, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import ErrorDetails, PydanticCustomError

from kfaas.names import LATEST, function_key
from kfaas.podtemplate import PodTemplate, not_allowed

API_VERSION: Final = "kfaas.dev/v1alpha1"
# What `load_documents` parses a document of another kind into.
_Parsed = TypeVar("_Parsed")
API_GROUP = "kfaas.dev"
KINDS = ("Function", "EventSourceMapping")
# Kinds of the API group defined by modules that import this one, which load them from the same
# files themselves (a Schedule: kfaas.schedule_manifests, loaded by kfaas dev): skipped here.
KINDS_LOADED_ELSEWHERE = ("Schedule",)

# Kubernetes object names: Function names become Service, Deployment and label values, which
# are limited to DNS-1123 labels (63 characters).
DNS_LABEL_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
# ConfigMap keys, which is where inline files end up.
CONFIG_MAP_KEY_PATTERN = r"^[-._a-zA-Z0-9]+$"
# Lambda's rule for environment variable names.
ENV_NAME_PATTERN = r"^[a-zA-Z]([a-zA-Z0-9_])*$"
# Where a JWT trigger's keys may be fetched from: https, or plain http to this host only.
JWKS_URL_PATTERN = r"^(https://[^\s/]+|http://(localhost|127\.0\.0\.1|\[::1\])(:[0-9]+)?)(/\S*)?$"
# An OAuth scope (RFC 6750 scope-token): it is echoed in a www-authenticate header.
SCOPE_PATTERN = r"^[!#-\[\]-~]+$"

# A CORS origin (a function URL's AllowOrigins): `*`, or scheme://host[:port] with no path.
CORS_ORIGIN_PATTERN = (
    r"^(\*|[a-zA-Z][a-zA-Z0-9+.-]*://([a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*|\[[0-9a-fA-F:.]+\])"
    r"(:[0-9]{1,5})?)$"
)
# An HTTP header name (RFC 9110 token), or `*`.
HEADER_NAME_PATTERN = r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$"

# What a failed pattern means, in the words a user can act on.
_PATTERN_RULES = {
    DNS_LABEL_PATTERN: (
        "must be a DNS-1123 label (lower-case letters, digits and '-', "
        "starting and ending with a letter or digit)"
    ),
    DNS_SUBDOMAIN_PATTERN: (
        "must be a DNS-1123 subdomain (lower-case letters, digits, '-' and '.', "
        "starting and ending with a letter or digit)"
    ),
    CONFIG_MAP_KEY_PATTERN: "must be a file name made of letters, digits, '-', '_' and '.'",
    ENV_NAME_PATTERN: "must start with a letter and hold only letters, digits and '_'",
    JWKS_URL_PATTERN: "must be an https:// URL (http:// only to localhost or 127.0.0.1)",
    SCOPE_PATTERN: "must be printable ASCII without spaces, quotes or backslashes",
    CORS_ORIGIN_PATTERN: "must be * or an origin scheme://host[:port], without a path",
    HEADER_NAME_PATTERN: "must be an HTTP header name (letters, digits and !#$%&'*+.^_`|~-)",
}

DnsLabel = Annotated[str, StringConstraints(max_length=63, pattern=DNS_LABEL_PATTERN)]
DnsSubdomain = Annotated[str, StringConstraints(max_length=253, pattern=DNS_SUBDOMAIN_PATTERN)]
NonEmpty = Annotated[str, StringConstraints(min_length=1)]
# What a mapping or a destination invokes (ADR 024): `$LATEST`, a version number or an alias.
QUALIFIER_PATTERN = r"^(\$LATEST|[a-z0-9]([-a-z0-9]*[a-z0-9])?)$"
Qualifier = Annotated[str, StringConstraints(max_length=63, pattern=QUALIFIER_PATTERN)]
FileName = Annotated[str, StringConstraints(max_length=253, pattern=CONFIG_MAP_KEY_PATTERN)]
EnvName = Annotated[str, StringConstraints(pattern=ENV_NAME_PATTERN)]
Sha256Hex = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]
CorsOrigin = Annotated[str, StringConstraints(max_length=253, pattern=CORS_ORIGIN_PATTERN)]
CorsHeaderName = Annotated[str, StringConstraints(max_length=1024, pattern=HEADER_NAME_PATTERN)]
# Lambda's limit on an uploaded zip (kfaas.code_archives.MAX_ZIPPED_BYTES, not imported: the
# models stay free of the archive code).
ZIP_LIMIT = 50 * 1024 * 1024


class _Model(BaseModel):
    """Manifest fields are camelCase in YAML and snake_case in Python; unknown fields are errors."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        populate_by_name=True,
        alias_generator=to_camel,
    )


def _exactly_one(model: BaseModel, fields: Sequence[str], what: str = "") -> None:
    """Raise the 'exactly one of' rule, naming the YAML fields, when it does not hold."""
    present = [name for name in fields if getattr(model, name) is not None]
    if len(present) != 1:
        names = ", ".join(_alias(model, name) for name in fields)
        raise PydanticCustomError("kfaas_rule", f"exactly one of {names} must be set{what}")


def _alias(model: BaseModel, name: str) -> str:
    return type(model).model_fields[name].alias or name


# -- Function --------------------------------------------------------------------------------


class Metadata(BaseModel):
    """Kubernetes object metadata.

    Unlike the spec, unknown fields are ignored here: objects read back from the API server carry
    `uid`, `resourceVersion`, `managedFields` and more, which belong to Kubernetes, not to us.
    """

    model_config = ConfigDict(extra="ignore", strict=True, populate_by_name=True)

    name: DnsLabel
    namespace: DnsLabel = "default"
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)


class SourcedObject(_Model):
    """A kind's top-level object: the file it came from, and its `namespace/name` store key.

    `source` is not a manifest field (a private attribute: kept out of dumps and out of the JSON
    schema, so the CRDs do not change); kfaas dev sets it so messages name the file.
    """

    if TYPE_CHECKING:
        # Every kind declares its own (Function's is `Metadata`, a version's `ObjectMetadata`).
        metadata: Metadata

    _source: str | None = PrivateAttr(default=None)

    @property
    def source(self) -> str | None:
        return self._source

    @source.setter
    def source(self, value: str | None) -> None:
        self._source = value

    @property
    def key(self) -> str:
        return f"{self.metadata.namespace}/{self.metadata.name}"


class StoredZip(_Model):
    """A zip uploaded through the management API, kept by the code store by its sha256 (ADR 025)."""

    sha256: Sha256Hex
    size: int = Field(ge=1, le=ZIP_LIMIT)


class Code(_Model):
    """Where the handler's code comes from; exactly one source is set."""

    inline: dict[FileName, str] | None = None
    config_map: DnsSubdomain | None = None
    image: NonEmpty | None = None
    # Relative to the manifest file in YAML; `load_manifests` stores it absolute.
    path: NonEmpty | None = None
    zip: StoredZip | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        _exactly_one(self, ("inline", "config_map", "image", "path", "zip"))
        return self


class NameRef(_Model):
    name: DnsSubdomain
    optional: bool | None = None


class EnvFromSource(_Model):
    """Kubernetes `envFrom` entry: how secrets reach the function without being written inline."""

    secret_ref: NameRef | None = None
    config_map_ref: NameRef | None = None
    prefix: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        _exactly_one(self, ("secret_ref", "config_map_ref"))
        return self


class Concurrency(_Model):
    per_instance: int = Field(default=1, ge=1)
    # None means "no cap of its own"; 0 stops every invocation (Lambda's way to disable a function).
    reserved: int | None = Field(default=None, ge=0)
    provisioned: int = Field(default=0, ge=0)


class Scaling(_Model):
    min_instances: int = Field(default=0, ge=0)
    max_instances: int = Field(default=100, ge=1)
    scale_to_zero_after_seconds: float = Field(default=300, ge=0)
    target_utilization: float = Field(default=0.7, gt=0, le=1)

    @model_validator(mode="after")
    def _min_below_max(self) -> Self:
        if self.min_instances > self.max_instances:
            raise PydanticCustomError(
                "kfaas_rule",
                f"minInstances ({self.min_instances}) must not be above "
                f"maxInstances ({self.max_instances})",
            )
        return self


class SecretName(_Model):
    """A Secret in the object's own namespace, by name."""

    name: DnsSubdomain


class KafkaTls(_Model):
    """Encrypt the connection to the brokers (ADR 027).

    The brokers' certificates are checked against the CA certificate in the Secret's key `ca.crt`
    (a private CA, as Strimzi and most company clusters use), else against the system's CAs.
    """

    ca_secret_ref: SecretName | None = None


class KafkaAuth(_Model):
    """How kfaas authenticates to the brokers, as Lambda's self-managed Kafka source does
    (ADR 027). Credentials are only ever read from the Secret, never written in a manifest:
    `username`/`password` for the SASL mechanisms, `tls.crt`/`tls.key` (a `kubernetes.io/tls`
    Secret) for a client certificate."""

    mechanism: Literal[
        "BASIC_AUTH", "SASL_SCRAM_256_AUTH", "SASL_SCRAM_512_AUTH", "CLIENT_CERTIFICATE_TLS_AUTH"
    ]
    secret_ref: SecretName


def _secured_rules(tls: KafkaTls | None, auth: KafkaAuth | None) -> None:
    """A password or a client certificate is only sent over an encrypted connection (SCRAM,
    which never sends the password, may run without one)."""
    if auth is None or tls is not None:
        return
    if auth.mechanism in ("BASIC_AUTH", "CLIENT_CERTIFICATE_TLS_AUTH"):
        raise PydanticCustomError(
            "kfaas_rule", f"auth.mechanism {auth.mechanism} requires tls (set tls: {{}} at least)"
        )


class KafkaDestination(_Model):
    topic: NonEmpty
    # Without it the platform's own Kafka (KFAAS_KAFKA_BOOTSTRAP_SERVERS and its security
    # settings) is used, or, for a mapping's on-failure destination, the source's cluster.
    bootstrap_servers: NonEmpty | None = None
    # Only with bootstrapServers: another cluster's own security.
    tls: KafkaTls | None = None
    auth: KafkaAuth | None = None

    @model_validator(mode="after")
    def _security_of_its_own_cluster(self) -> Self:
        if self.bootstrap_servers is None and (self.tls is not None or self.auth is not None):
            raise PydanticCustomError(
                "kfaas_rule",
                "tls and auth are only used with bootstrapServers; without it the platform's "
                "(or the source's) Kafka settings apply",
            )
        _secured_rules(self.tls, self.auth)
        return self


class RedisDestination(_Model):
    stream: NonEmpty
    # Without it the platform's own Redis (KFAAS_REDIS_URL) is used.
    url: NonEmpty | None = None


class FunctionDestination(_Model):
    name: DnsLabel
    # A version or alias of it (resolved when the record is queued); none: `$LATEST`.
    qualifier: Qualifier | None = None


class Destination(_Model):
    """Where an asynchronous invocation record is sent; exactly one target."""

    kafka: KafkaDestination | None = None
    redis: RedisDestination | None = None
    function: FunctionDestination | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        _exactly_one(self, ("kafka", "redis", "function"))
        return self


class AsyncConfig(_Model):
    maximum_retry_attempts: int = Field(default=2, ge=0, le=2)
    maximum_event_age_seconds: int = Field(default=21600, ge=60, le=21600)
    on_success: Destination | None = None
    on_failure: Destination | None = None


class Cors(_Model):
    """The same fields and limits as a Lambda function URL's CORS configuration (ADR 029)."""

    # Values become response header values (kfaas.gateway.cors), so each is held to a grammar
    # that cannot carry a second header: origins `scheme://host[:port]`, header names tokens.
    allow_credentials: bool = False
    allow_headers: list[CorsHeaderName] = Field(default_factory=list, max_length=100)
    allow_methods: list[Literal["GET", "PUT", "HEAD", "POST", "PATCH", "DELETE", "*"]] = Field(
        default_factory=list, max_length=6
    )
    allow_origins: list[CorsOrigin] = Field(default_factory=list, max_length=100)
    expose_headers: list[CorsHeaderName] = Field(default_factory=list, max_length=100)
    max_age: int = Field(default=0, ge=0, le=86400)

    @model_validator(mode="after")
    def _credentials_need_origins(self) -> Self:
        # Browsers ignore `Access-Control-Allow-Origin: *` on a credentialed request, and
        # reflecting every origin instead would hand any site the caller's cookies.
        if self.allow_credentials and "*" in self.allow_origins:
            raise PydanticCustomError(
                "kfaas_rule", "allowCredentials true needs allowOrigins to name origins, not *"
            )
        return self


class KeyRef(_Model):
    """A Secret or ConfigMap holding trigger keys: every value, or only the value of `key`."""

    name: DnsSubdomain
    key: (
        Annotated[str, StringConstraints(max_length=253, pattern=CONFIG_MAP_KEY_PATTERN)] | None
    ) = None


class ApiKeySource(_Model):
    """Where an `API_KEY` trigger's valid keys are; exactly one source is set."""

    secret_ref: KeyRef | None = None
    # `kfaas dev` only: one key per line; relative to the manifest file in YAML.
    file: NonEmpty | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        _exactly_one(self, ("secret_ref", "file"))
        return self


class JwtKeySource(_Model):
    """Public keys (a JWKS document or PEM keys) held in the cluster or, in `kfaas dev`, a file."""

    secret_ref: KeyRef | None = None
    config_map_ref: KeyRef | None = None
    file: NonEmpty | None = None

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        _exactly_one(self, ("secret_ref", "config_map_ref", "file"))
        return self


class Jwt(_Model):
    """An API Gateway JWT authorizer: who issues the tokens, for whom, and their signing keys."""

    issuer: Annotated[str, StringConstraints(min_length=1, max_length=2048)]
    audiences: list[Annotated[str, StringConstraints(min_length=1, max_length=2048)]] = Field(
        min_length=1, max_length=50
    )
    # Plain http only to a loopback address: keys fetched in clear text could be swapped.
    jwks_url: (
        Annotated[str, StringConstraints(max_length=2048, pattern=JWKS_URL_PATTERN)] | None
    ) = None
    keys: JwtKeySource | None = None
    # When set, a token must carry at least one of them (API Gateway's authorizationScopes).
    scopes: list[Annotated[str, StringConstraints(max_length=256, pattern=SCOPE_PATTERN)]] = Field(
        default_factory=list, max_length=50
    )

    @model_validator(mode="after")
    def _one_key_source(self) -> Self:
        _exactly_one(self, ("jwks_url", "keys"))
        return self


class Http(_Model):
    # Opt-in, like a function URL: nothing is reachable over plain HTTP unless asked for.
    enabled: bool = False
    auth: Literal["NONE", "API_KEY", "JWT", "AWS_IAM"] = "NONE"
    api_key: ApiKeySource | None = None
    jwt: Jwt | None = None
    cors: Cors | None = None

    @model_validator(mode="after")
    def _auth_configured(self) -> Self:
        # Configuration the chosen mode would ignore is refused: it reads as protection it is not.
        for mode, name in (("API_KEY", "api_key"), ("JWT", "jwt")):
            field = _alias(self, name)
            if self.auth == mode and getattr(self, name) is None:
                raise PydanticCustomError("kfaas_rule", f"auth {mode} requires {field}")
            if self.auth != mode and getattr(self, name) is not None:
                raise PydanticCustomError(
                    "kfaas_rule", f"{field} is only used with auth {mode}, not {self.auth}"
                )
        return self


class Tracing(_Model):
    mode: Literal["PassThrough", "Active"] = "PassThrough"


class FunctionSpec(_Model):
    runtime: Literal["python3.11", "python3.12", "python3.13", "provided"]
    handler: NonEmpty
    code: Code
    # Lambda's Description: configuration that published versions freeze (ADR 024).
    description: str = Field(default="", max_length=256)
    memory_mb: int = Field(default=128, ge=128, le=10240, alias="memoryMB")
    timeout_seconds: int = Field(default=3, ge=1, le=900)
    environment: dict[EnvName, str] = Field(default_factory=dict)
    # Bounded so the API server can afford the CEL rule on each entry.
    env_from: list[EnvFromSource] = Field(default_factory=list, max_length=100)
    concurrency: Concurrency = Field(default_factory=Concurrency)
    scaling: Scaling = Field(default_factory=Scaling)
    async_: AsyncConfig = Field(default_factory=AsyncConfig, alias="async")
    http: Http = Field(default_factory=Http)
    tracing: Tracing = Field(default_factory=Tracing)
    # An allowlist of pod settings (kfaas.podtemplate); the hardening itself is not negotiable.
    pod_template: PodTemplate = Field(default_factory=PodTemplate)

    @model_validator(mode="after")
    def _provisioned_within_max(self) -> Self:
        if self.concurrency.provisioned > self.scaling.max_instances:
            raise PydanticCustomError(
                "kfaas_rule",
                f"concurrency.provisioned ({self.concurrency.provisioned}) must not be above "
                f"scaling.maxInstances ({self.scaling.max_instances})",
            )
        return self


class Function(SourcedObject):
    api_version: Literal["kfaas.dev/v1alpha1"] = API_VERSION
    kind: Literal["Function"] = "Function"
    metadata: Metadata
    spec: FunctionSpec
    # Written by the operator; accepted so that objects read back from the cluster parse.
    status: dict[str, Any] | None = None

    # Not a manifest field: `$LATEST`, or N when this is published version N run from its
    # template (`as_version`), keyed `namespace/name:N` so it has instances of its own.
    _version: str = PrivateAttr(default=LATEST)

    @property
    def version(self) -> str:
        """What runs: `$LATEST` or a published version's number (X-Amz-Executed-Version)."""
        return self._version

    @property
    def key(self) -> str:
        return function_key(self.metadata.namespace, self.metadata.name, self._version)

    def as_version(self, version: int) -> Function:
        """This function's spec run as published version ``version`` (a version's template)."""
        published = self.model_copy()
        published._version = str(version)
        return published

    def code_root(self) -> Path | None:
        """The local folder holding the code (`code.path`), absolute; None for other sources."""
        path = self.spec.code.path
        return None if path is None else Path(os.path.abspath(path))


# -- EventSourceMapping ----------------------------------------------------------------------


class KafkaSource(_Model):
    bootstrap_servers: NonEmpty
    topic: NonEmpty
    consumer_group_id: NonEmpty | None = None
    starting_position: Literal["LATEST", "TRIM_HORIZON"] = "LATEST"
    tls: KafkaTls | None = None
    auth: KafkaAuth | None = None

    @model_validator(mode="after")
    def _secured(self) -> Self:
        _secured_rules(self.tls, self.auth)
        return self


class RedisSource(_Model):
    url: NonEmpty
    stream: NonEmpty
    consumer_group: NonEmpty | None = None
    starting_position: Literal["LATEST", "TRIM_HORIZON"] = "LATEST"


class Filter(_Model):
    pattern: str

    @field_validator("pattern")
    @classmethod
    def _json_object(cls, pattern: str) -> str:
        # Checked here so a typo fails at apply time, not as records silently filtered out.
        try:
            parsed = json.loads(pattern)
        except ValueError:
            parsed = None
        if not isinstance(parsed, dict):
            raise PydanticCustomError("kfaas_rule", "must be a JSON object")
        return pattern


class FilterCriteria(_Model):
    filters: list[Filter] = Field(default_factory=list, max_length=5)


class StreamDestination(_Model):
    """Where records a mapping gave up on go; exactly one target."""

    kafka: KafkaDestination | None = None
    redis: RedisDestination | None = None

    @model_validator(mode="after")
    def _one_target(self) -> Self:
        _exactly_one(self, ("kafka", "redis"))
        return self


class DestinationConfig(_Model):
    on_failure: StreamDestination | None = None


class EventSourceMappingSpec(_Model):
    function_name: DnsLabel
    # Lambda's qualified FunctionName (`name:alias`, `name:N`): what each batch invokes.
    qualifier: Qualifier | None = None
    enabled: bool = True
    kafka: KafkaSource | None = None
    redis: RedisSource | None = None
    batch_size: int = Field(default=100, ge=1, le=10000)
    maximum_batching_window_seconds: float = Field(default=0.5, ge=0, le=300)
    maximum_retry_attempts: int = Field(default=-1, ge=-1, le=10000)
    maximum_record_age_seconds: int = Field(default=-1, ge=-1, le=604800)
    bisect_batch_on_function_error: bool = False
    function_response_types: list[Literal["ReportBatchItemFailures"]] = Field(default_factory=list)
    filter_criteria: FilterCriteria | None = None
    destination_config: DestinationConfig | None = None
    parallelism: int = Field(default=1, ge=1)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        _exactly_one(self, ("kafka", "redis"))
        return self


class EventSourceMapping(SourcedObject):
    api_version: Literal["kfaas.dev/v1alpha1"] = API_VERSION
    kind: Literal["EventSourceMapping"] = "EventSourceMapping"
    metadata: Metadata
    spec: EventSourceMappingSpec
    status: dict[str, Any] | None = None


Manifest = Function | EventSourceMapping


# -- Errors ----------------------------------------------------------------------------------


class ManifestError(ValueError):
    """One or more invalid manifests.

    `problems` holds one line per problem, each starting with where it was found
    (`<file>: <field path>: <rule>`), so one error can report every file at once; `source` is the
    file (or `"<string>"`), or the files joined by ", " when several are at fault.
    """

    def __init__(self, source: str, problems: Sequence[str]) -> None:
        self.source = source
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def _render(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _bound(value: Any) -> str:
    # Float fields report their bounds as floats; "above 0" reads better than "above 0.0".
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _choices(expected: str) -> str:
    # pydantic spells Literal choices as "'a', 'b' or 'c'"; users read "a, b, c".
    parts = expected.replace(" or ", ", ").split(", ")
    return ", ".join(part.strip("'\"") for part in parts)


def _location(loc: Sequence[int | str]) -> str:
    text = ""
    for part in loc:
        if part == "[key]":
            # pydantic's marker for "the key itself is wrong"; the key is already in the path.
            continue
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


def _rule(error: ErrorDetails) -> str:
    """Say what rule a pydantic error broke, in plain words, starting with the offending value."""
    kind = error["type"]
    ctx = error.get("ctx", {})
    value = _render(error["input"])
    plain = {
        "missing": "is required",
        "extra_forbidden": not_allowed(error["loc"]) or "is not a known field",
        "int_type": f"{value} must be an integer",
        "int_parsing": f"{value} must be an integer",
        "int_from_float": f"{value} must be an integer",
        "float_type": f"{value} must be a number",
        "float_parsing": f"{value} must be a number",
        "bool_type": f"{value} must be true or false",
        "bool_parsing": f"{value} must be true or false",
        "string_type": f"{value} must be a string",
        "dict_type": f"{value} must be a mapping",
        "model_type": f"{value} must be a mapping",
        "model_attributes_type": f"{value} must be a mapping",
        "list_type": f"{value} must be a list",
        "none_required": f"{value} must be null",
    }
    if kind in plain:
        return plain[kind]
    if kind == "greater_than_equal":
        return f"{value} is below the minimum {_bound(ctx['ge'])}"
    if kind == "less_than_equal":
        return f"{value} is above the maximum {_bound(ctx['le'])}"
    if kind == "greater_than":
        return f"{value} must be above {_bound(ctx['gt'])}"
    if kind == "less_than":
        return f"{value} must be below {_bound(ctx['lt'])}"
    if kind in ("literal_error", "enum"):
        return f"{value} must be one of {_choices(str(ctx['expected']))}"
    if kind == "string_pattern_mismatch":
        rule = _PATTERN_RULES.get(str(ctx["pattern"]), f"must match {ctx['pattern']}")
        return f"{value} {rule}"
    if kind == "string_too_short":
        return "must not be empty" if ctx["min_length"] == 1 else f"{value} is too short"
    if kind == "string_too_long":
        return f"{value} is longer than the maximum of {ctx['max_length']} characters"
    if kind == "too_long":
        return f"has more than the maximum of {ctx['max_length']} items"
    if kind == "kfaas_rule":
        return error["msg"]
    message = error["msg"]
    return message[:1].lower() + message[1:]


def _problems(exc: ValidationError) -> list[str]:
    problems = []
    for error in exc.errors(include_url=False):
        where = _location(error["loc"])
        rule = _rule(error)
        problems.append(f"{where}: {rule}" if where else rule)
    return problems


def validation_problems(exc: ValidationError) -> list[str]:
    """One line per problem (`<field path>: <rule>`), for the kinds defined beside these
    (``kfaas.version_manifests``), so every kind's errors read alike."""
    return _problems(exc)


# -- Parsing and loading ---------------------------------------------------------------------


def _prefixed(source: str, problems: Iterable[str]) -> list[str]:
    return [f"{source}: {problem}" for problem in problems]


def parse_manifest(doc: Mapping[str, Any], source: str = "<string>") -> Manifest:
    """Validate one manifest document, dispatching on its kind.

    When `source` is a file, a relative `code.path` is resolved against the file's folder and
    stored absolute, so the manifest means the same wherever `kfaas dev` was started.
    """
    folder = None if source.startswith("<") else os.path.dirname(os.path.abspath(source))
    return _parse(doc, source, folder)


def _parse(doc: Any, source: str, folder: str | None) -> Manifest:
    if not isinstance(doc, Mapping):
        raise ManifestError(source, _prefixed(source, ["a manifest must be a mapping"]))
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    problems = []
    if api_version != API_VERSION:
        problems.append(f"apiVersion: {_render(api_version)} must be {API_VERSION}")
    if kind not in KINDS:
        problems.append(f"kind: {_render(kind)} must be one of {', '.join(KINDS)}")
    if problems:
        raise ManifestError(source, _prefixed(source, problems))
    model: type[Function] | type[EventSourceMapping]
    model = Function if kind == "Function" else EventSourceMapping
    try:
        # By alias only: YAML spells fields as DESIGN does, so `memory_mb:` is an unknown field.
        manifest = model.model_validate(dict(doc), by_alias=True, by_name=False)
    except ValidationError as exc:
        raise ManifestError(source, _prefixed(source, _problems(exc))) from None
    manifest.source = source
    if isinstance(manifest, Function) and folder is not None:
        code = manifest.spec.code
        if code.path is not None and not os.path.isabs(code.path):
            code.path = os.path.normpath(os.path.join(folder, code.path))
        _resolve_key_files(manifest.spec.http, folder)
    return manifest


def _resolve_key_files(http: Http, folder: str) -> None:
    """Make `kfaas dev`'s key files (`apiKey.file`, `jwt.keys.file`) absolute, like `code.path`."""
    for source in (http.api_key, http.jwt.keys if http.jwt else None):
        if source is not None and source.file is not None and not os.path.isabs(source.file):
            source.file = os.path.normpath(os.path.join(folder, source.file))


def manifest_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Path]]:
    """The YAML files named by `paths` (folders searched recursively), and the missing paths.

    Hidden folders below a searched folder are skipped: they hold tools' files (`.git`, `.venv`)
    and `kfaas dev`'s own state (`.kfaas`, whose stored objects are not manifests).
    """
    files: list[Path] = []
    missing: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = [
                p
                for p in path.rglob("*")
                if p.suffix in (".yaml", ".yml")
                and p.is_file()
                and not any(part.startswith(".") for part in p.relative_to(path).parts[:-1])
            ]
            files.extend(sorted(found))
        elif path.is_file():
            files.append(path)
        else:
            missing.append(path)
    return files, missing


def _is_ours(doc: Mapping[str, Any]) -> bool:
    # A folder may hold other objects (ConfigMaps, other projects' `kind: Function`): those are
    # skipped. Anything in our API group is checked, so a typo in `kind` is reported, not ignored.
    api_version = doc.get("apiVersion")
    if isinstance(api_version, str) and api_version.split("/")[0] == API_GROUP:
        return True
    return api_version is None and doc.get("kind") in KINDS


def read_documents(path: Path) -> list[Any]:
    """The non-empty YAML documents of a file; unreadable files raise a ManifestError."""
    try:
        text = path.read_text(encoding="utf-8")
        return [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"{path}: line {mark.line + 1}, column {mark.column + 1}" if mark else str(path)
        raise ManifestError(str(path), [f"{where}: not valid YAML: {exc.problem}"]) from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ManifestError(str(path), [f"{path}: cannot be read: {exc}"]) from None


def load_documents(
    paths: Iterable[str | Path],
    wanted: Callable[[Any], bool],
    parse: Callable[[Mapping[str, Any], str], tuple[tuple[str, str], _Parsed]],
    kind: str,
) -> dict[tuple[str, str], _Parsed]:
    """The documents of one other kind (a Schedule, a v1 Secret) in the files and folders kfaas
    dev reads manifests from, parsed and keyed by (namespace, name).

    ``wanted`` picks the documents, ``parse`` turns one (and its source, for messages) into its key
    and value or raises ManifestError. Missing paths and unreadable files are ``load_manifests``'
    to report; here they are skipped. All problems are raised as one ManifestError.
    """
    files, _ = manifest_files(paths)
    found: dict[tuple[str, str], _Parsed] = {}
    defined_in: dict[tuple[str, str], str] = {}
    problems: list[str] = []
    faulty: list[str] = []
    for path in files:
        try:
            documents = read_documents(path)
        except ManifestError:
            continue
        for number, document in enumerate(documents, start=1):
            if not wanted(document):
                continue
            source = str(path) if len(documents) == 1 else f"{path} (document {number})"
            try:
                key, value = parse(document, source)
            except ManifestError as exc:
                problems.extend(exc.problems)
                faulty.append(str(path))
                continue
            if key in defined_in:
                problems.append(
                    f"{source}: {kind} {key[0]}/{key[1]} is already defined in {defined_in[key]}"
                )
                faulty.append(str(path))
                continue
            defined_in[key] = source
            found[key] = value
    if problems:
        raise ManifestError(", ".join(dict.fromkeys(faulty)), problems)
    return found


def load_manifests(paths: Iterable[str | Path]) -> list[Manifest]:
    """Load every Function and EventSourceMapping in the given files and folders.

    Folders are searched recursively for `*.yaml`/`*.yml` in sorted order; files may hold several
    documents. Every problem in every file is collected and raised as one ManifestError, so a
    user fixes them all in one round.
    """
    files, missing = manifest_files(paths)
    # (file, error) pairs: the combined error names the faulty files, not their documents.
    errors = [
        (path, ManifestError(str(path), [f"{path}: no such file or folder"])) for path in missing
    ]
    manifests: list[Manifest] = []
    defined_in: dict[tuple[str, str], str] = {}
    for path in files:
        try:
            documents = read_documents(path)
        except ManifestError as exc:
            errors.append((path, exc))
            continue
        folder = str(path.parent.absolute())
        for number, doc in enumerate(documents, start=1):
            source = str(path) if len(documents) == 1 else f"{path} (document {number})"
            if isinstance(doc, Mapping) and (
                not _is_ours(doc)
                or (
                    doc.get("apiVersion") == API_VERSION
                    and doc.get("kind") in KINDS_LOADED_ELSEWHERE
                )
            ):
                continue
            try:
                manifest = _parse(doc, source, folder)
            except ManifestError as exc:
                errors.append((path, exc))
                continue
            identity = (manifest.kind, manifest.key)
            if identity in defined_in:
                problem = (
                    f"{manifest.kind} {manifest.key} is already defined in {defined_in[identity]}"
                )
                errors.append((path, ManifestError(source, [f"{source}: {problem}"])))
                continue
            defined_in[identity] = source
            manifests.append(manifest)
    if errors:
        files_at_fault = dict.fromkeys(str(path) for path, _ in errors)
        problems = [problem for _, error in errors for problem in error.problems]
        raise ManifestError(", ".join(files_at_fault), problems)
    return manifests
