"""Lambda's CreateFunction / UpdateFunctionConfiguration / UpdateFunctionCode requests as Functions.

The management API (ADR 024) turns a Lambda request into a ``Function`` object body, the same a
``kubectl apply`` would write, or into the change of an existing object's spec. Every parameter
botocore's model allows for these operations is either mapped here or refused with
``InvalidParameter`` naming it and what to use instead: nothing a client sends is silently
ignored, so a deploy script never believes it configured something kfaas does not do. A
parameter that asks for nothing (``Layers: []``, ``VpcConfig`` with no subnets, as Terraform
sends) is accepted: the feature stays off, which is what it says. Pure: the zip is decoded here,
but checked and stored by the caller (``code_archives``, the code store) before the Function
names its digest.
"""

from __future__ import annotations

import base64
import binascii
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from pydantic import ValidationError

from .lambda_shapes import InvalidParameter
from .lambda_tags import ANNOTATION as TAGS_ANNOTATION
from .lambda_tags import encode_tags
from .manifests import API_VERSION, Function
from .names import InvalidFunctionName, QualifierMismatch, parse_function_name

# ADR 024: the Role a client gave is kept, and has no effect (pods run as their ServiceAccount).
ROLE_ANNOTATION: Final = "kfaas.dev/role"
MAX_ROLE: Final = 2048
# Lambda's runtimes kfaas runs; the `provided.*` families are one `provided` here.
RUNTIMES: Final = ("python3.11", "python3.12", "python3.13", "provided")
_PROVIDED: Final = ("provided.al2", "provided.al2023")
# An image function's runtime when the request names none (Lambda takes none for images): the
# interpreter of the kfaas image it is built `FROM` (docs/functions.md).
IMAGE_RUNTIME: Final = "python3.11"
EPHEMERAL_STORAGE_MB: Final = 512

# What to use instead of each refused parameter; refused only when it asks for something.
REFUSED: Final[Mapping[str, str]] = {
    "VpcConfig": "functions run as pods on the cluster network; restrict their traffic with "
    "NetworkPolicies",
    "DeadLetterConfig": "use PutFunctionEventInvokeConfig with DestinationConfig.OnFailure",
    "KMSKeyArn": "keep secret values in a Secret and reference it in spec.envFrom",
    "Layers": "put the layer's files into the zip or the image",
    "FileSystemConfigs": "kfaas functions mount no file systems",
    "CodeSigningConfigArn": "kfaas does not sign code; CodeSha256 identifies it",
    "SnapStart": "keep instances warm with spec.scaling.minInstances or "
    "PutProvisionedConcurrencyConfig's equivalent spec.concurrency.provisioned",
    "LoggingConfig": "a function's logs are its pods' output (kubectl logs)",
    "TenancyConfig": "kfaas has no tenant isolation mode",
    "CapacityProviderConfig": "functions run on the cluster's nodes",
    "DurableConfig": "kfaas has no durable functions",
    "RuntimeConfig": "kfaas has no runtime settings of this kind",
    "AcceleratorConfig": "kfaas has no accelerators",
    "PublishTo": "use Publish",
    "S3Bucket": "kfaas has no S3: send the zip as ZipFile",
    "S3Key": "kfaas has no S3: send the zip as ZipFile",
    "S3ObjectVersion": "kfaas has no S3: send the zip as ZipFile",
    "S3ObjectStorageMode": "kfaas has no S3: send the zip as ZipFile",
    "SourceKMSKeyArn": "the code store keeps zips as uploaded",
}
_IMAGE_CONFIG: Final = (
    "set the entry point and working directory in the image; ImageConfig.Command may name the "
    "handler (one entry)"
)
# The Function spec's fields (camelCase) and the Lambda parameter a refusal names.
_PARAMETERS: Final[Mapping[str, str]] = {
    "runtime": "Runtime",
    "handler": "Handler",
    "code": "Code",
    "description": "Description",
    "memoryMB": "MemorySize",
    "timeoutSeconds": "Timeout",
    "environment": "Environment",
    "tracing": "TracingConfig",
}
CREATE_PARAMETERS: Final = frozenset(
    {
        "FunctionName", "Runtime", "Role", "Handler", "Code", "Description", "Timeout",
        "MemorySize", "Publish", "PackageType", "Environment", "TracingConfig", "Tags",
        "Architectures", "EphemeralStorage", "ImageConfig", *REFUSED,
    }
)  # fmt: skip
CONFIGURATION_PARAMETERS: Final = frozenset(
    {
        "Role", "Handler", "Description", "Timeout", "MemorySize", "Environment", "Runtime",
        "TracingConfig", "RevisionId", "EphemeralStorage", "ImageConfig", *REFUSED,
    }
)  # fmt: skip
CODE_PARAMETERS: Final = frozenset(
    {"ZipFile", "ImageUri", "Architectures", "Publish", "DryRun", "RevisionId", *REFUSED}
)
_CODE_MEMBERS: Final = frozenset({"ZipFile", "ImageUri", *REFUSED})


@dataclass(frozen=True)
class CodeSource:
    """The code a request carries: a zip's bytes (to check and store) or an image reference."""

    zip_file: bytes | None = None
    image_uri: str | None = None


@dataclass(frozen=True)
class CreateFunction:
    namespace: str
    name: str
    # The spec without `code` (set once the zip is stored), camelCase as a manifest's.
    spec: dict[str, Any]
    code: CodeSource
    annotations: dict[str, str] = field(default_factory=dict)
    publish: bool = False


@dataclass(frozen=True)
class ConfigurationUpdate:
    spec: dict[str, Any]
    annotations: dict[str, str]
    revision_id: str | None = None


@dataclass(frozen=True)
class CodeUpdate:
    code: CodeSource
    publish: bool = False
    dry_run: bool = False
    revision_id: str | None = None


def _asks_for(value: Any) -> bool:
    """Whether a parameter's value asks for something (not null, empty, false or `None`)."""
    if isinstance(value, Mapping):
        return any(_asks_for(item) for item in value.values())
    if isinstance(value, list):
        return any(_asks_for(item) for item in value)
    return value not in (None, "", False, "None")


def _check_members(document: Mapping[str, Any], allowed: frozenset[str]) -> None:
    for parameter, value in document.items():
        if parameter not in allowed:
            raise InvalidParameter(parameter, f"Unknown parameter {parameter}")
        if parameter in REFUSED and _asks_for(value):
            raise InvalidParameter(
                parameter, f"{parameter} is not supported by kfaas: {REFUSED[parameter]}"
            )


def _object(document: Mapping[str, Any], parameter: str) -> dict[str, Any]:
    value = document.get(parameter)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter(parameter, f"{parameter} must be an object")
    return value


def _string(document: Mapping[str, Any], parameter: str) -> str | None:
    value = document.get(parameter)
    if value is not None and not isinstance(value, str):
        raise InvalidParameter(parameter, f"{parameter} must be a string")
    return value


def _flag(document: Mapping[str, Any], parameter: str) -> bool:
    value = document.get(parameter, False)
    if not isinstance(value, bool):
        raise InvalidParameter(parameter, f"{parameter} must be true or false")
    return value


def _runtime(value: str) -> str:
    if value in _PROVIDED:
        return "provided"
    if value not in RUNTIMES:
        supported = ", ".join((*RUNTIMES, *_PROVIDED))
        raise InvalidParameter("Runtime", f"Runtime {value!r} is not one kfaas runs: {supported}")
    return value


def _check_platform(document: Mapping[str, Any]) -> None:
    """Architectures and EphemeralStorage: what every kfaas function has, or refused."""
    architectures = document.get("Architectures")
    if architectures is not None and architectures != ["x86_64"]:
        raise InvalidParameter(
            "Architectures",
            "Architectures must be ['x86_64']: kfaas's images are built for x86_64 nodes and a "
            "function cannot ask for another node architecture",
        )
    storage = _object(document, "EphemeralStorage")
    if storage and storage.get("Size") != EPHEMERAL_STORAGE_MB:
        raise InvalidParameter(
            "EphemeralStorage",
            f"EphemeralStorage.Size must be {EPHEMERAL_STORAGE_MB}: kfaas gives each function "
            "the /tmp of its pod",
        )


def _image_handler(document: Mapping[str, Any]) -> str | None:
    """ImageConfig.Command with one entry names the handler, as it does for Lambda's images."""
    config = _object(document, "ImageConfig")
    command = config.get("Command")
    if not config:
        return None
    if set(config) != {"Command"} or not (
        isinstance(command, list) and len(command) == 1 and isinstance(command[0], str)
    ):
        raise InvalidParameter("ImageConfig", f"ImageConfig: {_IMAGE_CONFIG}")
    return command[0]


def _apply_configuration(spec: dict[str, Any], document: Mapping[str, Any]) -> None:
    """Write the configuration parameters the request gives into ``spec`` (camelCase)."""
    runtime = _string(document, "Runtime")
    if runtime is not None:
        spec["runtime"] = _runtime(runtime)
    image_handler = _image_handler(document)  # checked even when Handler is given
    handler = _string(document, "Handler") or image_handler
    if handler is not None:
        spec["handler"] = handler
    description = _string(document, "Description")
    if description is not None:
        spec["description"] = description
    for parameter, key in (("Timeout", "timeoutSeconds"), ("MemorySize", "memoryMB")):
        if parameter in document:
            spec[key] = document[parameter]
    if "Environment" in document:
        variables = _object(document, "Environment").get("Variables") or {}
        spec["environment"] = variables
    if "TracingConfig" in document:
        spec["tracing"] = {"mode": _object(document, "TracingConfig").get("Mode", "PassThrough")}
    _check_platform(document)


def _role(document: Mapping[str, Any], annotations: dict[str, str]) -> None:
    role = _string(document, "Role")
    if role is None:
        return
    if not 1 <= len(role) <= MAX_ROLE or not role.isprintable():
        raise InvalidParameter("Role", f"Role must be 1 to {MAX_ROLE} printable characters")
    annotations[ROLE_ANNOTATION] = role


def decode_zip(text: Any) -> bytes:
    """Code.ZipFile / ZipFile: base64 in the JSON body, as botocore sends a blob."""
    if not isinstance(text, str):
        raise InvalidParameter("ZipFile", "ZipFile must be base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidParameter("ZipFile", f"ZipFile is not valid base64: {exc}") from None


def _code_source(code: Mapping[str, Any], *, image: bool) -> CodeSource:
    """One of ZipFile / ImageUri, matching the package type."""
    zip_text, image_uri = code.get("ZipFile"), _string(code, "ImageUri")
    if (zip_text is None) == (image_uri is None):
        raise InvalidParameter("Code", "Code must hold exactly one of ZipFile and ImageUri")
    if image and zip_text is not None:
        raise InvalidParameter(
            "PackageType", "A function of PackageType Image takes ImageUri, not ZipFile"
        )
    if not image and image_uri is not None:
        raise InvalidParameter("PackageType", "ImageUri needs PackageType Image")
    if image_uri is not None:
        if not image_uri or not image_uri.isprintable() or " " in image_uri:
            raise InvalidParameter("ImageUri", f"ImageUri {image_uri!r} is not an image reference")
        return CodeSource(image_uri=image_uri)
    return CodeSource(zip_file=decode_zip(zip_text))


def _tags(document: Mapping[str, Any], annotations: dict[str, str]) -> None:
    tags = _object(document, "Tags")
    if not all(isinstance(value, str) for value in tags.values()):
        raise InvalidParameter("Tags", "Tag values must be strings")
    if tags:
        annotations[TAGS_ANNOTATION] = encode_tags(tags)


def parse_create(document: Mapping[str, Any], default_namespace: str) -> CreateFunction:
    """CreateFunction's body as the Function to create; the zip still to be checked and stored."""
    _check_members(document, CREATE_PARAMETERS)
    raw_name = _string(document, "FunctionName")
    if not raw_name:
        raise InvalidParameter("FunctionName", "FunctionName is required")
    try:
        ref = parse_function_name(raw_name, default_namespace)
    except (InvalidFunctionName, QualifierMismatch) as exc:
        raise InvalidParameter("FunctionName", f"FunctionName: {exc}") from None
    if ref.qualifier is not None:
        raise InvalidParameter("FunctionName", "FunctionName must not carry a qualifier")
    package_type = document.get("PackageType", "Zip")
    if package_type not in ("Zip", "Image"):
        raise InvalidParameter("PackageType", "PackageType must be Zip or Image")
    image = package_type == "Image"
    code_document = _object(document, "Code")
    _check_members(code_document, _CODE_MEMBERS)
    code = _code_source(code_document, image=image)
    spec: dict[str, Any] = {"runtime": IMAGE_RUNTIME} if image else {}
    _apply_configuration(spec, document)
    for parameter, key in (("Runtime", "runtime"), ("Handler", "handler")):
        if key not in spec:
            why = f"{parameter} is required for a {package_type} function"
            raise InvalidParameter(parameter, why)
    annotations: dict[str, str] = {}
    _role(document, annotations)
    if ROLE_ANNOTATION not in annotations:
        raise InvalidParameter("Role", "Role is required")
    _tags(document, annotations)
    return CreateFunction(
        namespace=ref.namespace,
        name=ref.name,
        spec=spec,
        code=code,
        annotations=annotations,
        publish=_flag(document, "Publish"),
    )


def parse_configuration_update(
    document: Mapping[str, Any], spec: Mapping[str, Any], annotations: Mapping[str, str]
) -> ConfigurationUpdate:
    """UpdateFunctionConfiguration: the new spec and annotations (given ones replaced)."""
    _check_members(document, CONFIGURATION_PARAMETERS)
    new_spec = copy.deepcopy(dict(spec))
    _apply_configuration(new_spec, document)
    if new_spec.get("description") == "":
        del new_spec["description"]  # the default: a kubectl-written spec stays as written
    new_annotations = dict(annotations)
    _role(document, new_annotations)
    return ConfigurationUpdate(
        spec=new_spec,
        annotations=new_annotations,
        revision_id=_string(document, "RevisionId"),
    )


def parse_code_update(document: Mapping[str, Any], spec: Mapping[str, Any]) -> CodeUpdate:
    """UpdateFunctionCode: the code to store (of the function's package type)."""
    _check_members(document, CODE_PARAMETERS)
    _check_platform(document)
    image = (spec.get("code") or {}).get("image") is not None
    return CodeUpdate(
        code=_code_source(document, image=image),
        publish=_flag(document, "Publish"),
        dry_run=_flag(document, "DryRun"),
        revision_id=_string(document, "RevisionId"),
    )


def code_spec(source: CodeSource, *, sha256: str | None = None, size: int = 0) -> dict[str, Any]:
    """The spec's `code` for a stored zip (its hex digest and size) or an image."""
    if source.image_uri is not None:
        return {"image": source.image_uri}
    if sha256 is None:
        raise ValueError("a zip's code spec needs the digest it was stored under")
    return {"zip": {"sha256": sha256, "size": size}}


def function_body(
    namespace: str, name: str, spec: Mapping[str, Any], annotations: Mapping[str, str]
) -> dict[str, Any]:
    """A Function object body as the API server takes it; checked by :func:`check_function`."""
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if annotations:
        metadata["annotations"] = dict(annotations)
    return {"apiVersion": API_VERSION, "kind": "Function", "metadata": metadata, "spec": spec}


def message(error: InvalidParameter) -> str:
    """The refusal's text, naming its parameter (as Lambda's InvalidParameterValueException)."""
    text = str(error)
    return text if error.parameter in text else f"{error.parameter}: {text}"


def check_function(body: Mapping[str, Any]) -> Function:
    """The body as a Function, or the first refusal naming the Lambda parameter it came from."""
    try:
        return Function.model_validate(body)
    except ValidationError as exc:
        error = exc.errors()[0]
        location = [str(part) for part in error["loc"]]
        parameter = "FunctionName" if location[:1] == ["metadata"] else "Code"
        if location[:1] == ["spec"] and len(location) > 1:
            parameter = _PARAMETERS.get(location[1], location[1])
        if parameter == "FunctionName":
            message = (
                "FunctionName: kfaas function names are Kubernetes names (lower-case letters, "
                "digits and '-', at most 63)"
            )
        else:
            where = ".".join(location[1:]) or parameter
            message = f"{parameter}: {error['msg']} (spec.{where})"
        raise InvalidParameter(parameter, message) from None
