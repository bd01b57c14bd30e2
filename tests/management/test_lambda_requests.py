"""Lambda's write requests as Function specs, judged member by member against botocore's model.

Every member of CreateFunction's, UpdateFunctionConfiguration's and UpdateFunctionCode's input
shape is sent with a value that asks for something; each must either change the Function that
results (mapped) or be refused naming that member (InvalidParameterValueException). A member a new
botocore adds fails here until it is classified: nothing a client sends is silently ignored.
"""

from __future__ import annotations

import base64
from typing import Any

import botocore.session
import pytest

from kfaas.lambda_requests import (
    CODE_PARAMETERS,
    CONFIGURATION_PARAMETERS,
    CREATE_PARAMETERS,
    REFUSED,
    ROLE_ANNOTATION,
    CodeSource,
    check_function,
    code_spec,
    function_body,
    message,
    parse_code_update,
    parse_configuration_update,
    parse_create,
)
from kfaas.lambda_shapes import InvalidParameter
from kfaas.lambda_tags import ANNOTATION as TAGS

MODEL = botocore.session.get_session().get_service_model("lambda")
ZIP = b"PK\x05\x06" + b"\0" * 18  # an empty zip: decoding only, the checks are elsewhere
ROLE = "arn:aws:iam::123456789012:role/lambda"
BASE = {
    "FunctionName": "thumbnail",
    "Role": ROLE,
    "Runtime": "python3.12",
    "Handler": "app.handler",
    "Code": {"ZipFile": base64.b64encode(ZIP).decode()},
}
# A value asking for something, for each member of the three input shapes.
SAMPLES: dict[str, Any] = {
    "FunctionName": "media/resize",
    "Runtime": "python3.13",
    "Role": "arn:aws:iam::1:role/other",
    "Handler": "other.handler",
    "Code": {"ImageUri": "registry.example/fn:1"},
    "Description": "resizes",
    "Timeout": 30,
    "MemorySize": 512,
    "Publish": True,
    "PublishTo": "LATEST_PUBLISHED",
    "VpcConfig": {"SubnetIds": ["subnet-1"]},
    "PackageType": "Image",
    "DeadLetterConfig": {"TargetArn": "arn:aws:sqs:us-east-1:1:dlq"},
    "Environment": {"Variables": {"MODE": "fast"}},
    "KMSKeyArn": "arn:aws:kms:us-east-1:1:key/k",
    "TracingConfig": {"Mode": "Active"},
    "Tags": {"team": "media"},
    "Layers": ["arn:aws:lambda:us-east-1:1:layer:l:1"],
    "FileSystemConfigs": [{"Arn": "arn:aws:efs", "LocalMountPath": "/mnt/x"}],
    "CodeSigningConfigArn": "arn:aws:lambda:us-east-1:1:code-signing-config:csc-1",
    "ImageConfig": {"EntryPoint": ["/bin/sh"]},
    "Architectures": ["arm64"],
    "EphemeralStorage": {"Size": 1024},
    "SnapStart": {"ApplyOn": "PublishedVersions"},
    "LoggingConfig": {"LogFormat": "JSON"},
    "TenancyConfig": {"TenancyMode": "PER_TENANT"},
    "CapacityProviderConfig": {"LambdaManagedInstancesCapacityProviderConfig": {"X": "y"}},
    "DurableConfig": {"ExecutionTimeout": 60},
    "RuntimeConfig": {"X": "y"},
    "AcceleratorConfig": {"X": "y"},
    "RevisionId": "b6a3c1de-0000-4000-8000-000000000000",
    "ZipFile": base64.b64encode(b"PK other").decode(),
    "ImageUri": "registry.example/fn:2",
    "S3Bucket": "bucket",
    "S3Key": "key.zip",
    "S3ObjectVersion": "1",
    "S3ObjectStorageMode": "COPY",
    "DryRun": True,
    "SourceKMSKeyArn": "arn:aws:kms:us-east-1:1:key/k",
}


def members(operation: str, *, path: str = "") -> list[str]:
    """The input shape's members, but the one the path carries."""
    return [m for m in MODEL.operation_model(operation).input_shape.members if m != path]


def outcome(parse: Any) -> Any:
    """The parse's result, or the member an InvalidParameter names."""
    try:
        return parse()
    except InvalidParameter as exc:
        return ("refused", exc.parameter, str(exc))


@pytest.mark.parametrize(
    ("operation", "allowed"),
    [
        ("CreateFunction", CREATE_PARAMETERS),
        ("UpdateFunctionConfiguration", CONFIGURATION_PARAMETERS | {"FunctionName"}),
        ("UpdateFunctionCode", CODE_PARAMETERS | {"FunctionName"}),
    ],
)
def test_every_member_of_the_model_is_classified(operation: str, allowed: frozenset[str]) -> None:
    assert set(members(operation)) <= allowed | {"FunctionName"}, operation
    assert set(members(operation)) <= set(SAMPLES)
    code = MODEL.shape_for("FunctionCode").members
    assert set(code) <= {"ZipFile", "ImageUri", *REFUSED}


@pytest.mark.parametrize("member", members("CreateFunction"))
def test_create_maps_or_refuses_each_member(member: str) -> None:
    baseline = parse_create(BASE, "default")
    request = {**BASE, member: SAMPLES[member]}
    if member == "Code":  # an image needs its package type
        request["PackageType"] = "Image"
    if member == "PackageType":
        request["Code"] = SAMPLES["Code"]
    result = outcome(lambda: parse_create(request, "default"))
    if member in REFUSED or member in ("Architectures", "EphemeralStorage", "ImageConfig"):
        assert result[:2] == ("refused", member), result
        return
    assert not isinstance(result, tuple), result
    assert result != baseline, f"{member} changed nothing"


@pytest.mark.parametrize("member", members("UpdateFunctionConfiguration", path="FunctionName"))
def test_configuration_update_maps_or_refuses_each_member(member: str) -> None:
    spec = {"runtime": "python3.12", "handler": "app.handler", "code": {"inline": {"a.py": ""}}}
    baseline = parse_configuration_update({}, spec, {})
    result = outcome(lambda: parse_configuration_update({member: SAMPLES[member]}, spec, {}))
    if member in REFUSED or member in ("EphemeralStorage", "ImageConfig"):
        assert result[:2] == ("refused", member), result
        return
    assert not isinstance(result, tuple), result
    assert result != baseline, f"{member} changed nothing"


@pytest.mark.parametrize("member", members("UpdateFunctionCode", path="FunctionName"))
def test_code_update_maps_or_refuses_each_member(member: str) -> None:
    spec = {"runtime": "python3.12", "handler": "app.handler", "code": {"image": "r/fn:1"}}
    base = {"ImageUri": "r/fn:1"}
    baseline = parse_code_update(base, spec)
    request = (
        {member: SAMPLES[member]} if member in ("ZipFile",) else {**base, member: SAMPLES[member]}
    )
    if member == "ZipFile":  # a zip for a zip function
        spec = {**spec, "code": {"zip": {"sha256": "0" * 64, "size": 1}}}
    result = outcome(lambda: parse_code_update(request, spec))
    if member in REFUSED or member == "Architectures":
        assert result[:2] == ("refused", member), result
        return
    assert not isinstance(result, tuple), result
    assert result != baseline, f"{member} changed nothing"


def test_create_builds_the_function_a_manifest_would_hold() -> None:
    request = {
        **BASE,
        "FunctionName": "arn:aws:lambda:us-east-1:media:function:resize",
        "Description": "resizes",
        "Timeout": 30,
        "MemorySize": 256,
        "Environment": {"Variables": {"MODE": "fast"}},
        "TracingConfig": {"Mode": "Active"},
        "Tags": {"team": "media"},
        "Architectures": ["x86_64"],
        "EphemeralStorage": {"Size": 512},
        # Asking for nothing, as Terraform sends them: accepted.
        "Layers": [],
        "VpcConfig": {"SubnetIds": [], "SecurityGroupIds": []},
        "KMSKeyArn": "",
        "SnapStart": {"ApplyOn": "None"},
    }
    create = parse_create(request, "default")
    assert (create.namespace, create.name, create.code.zip_file) == ("media", "resize", ZIP)
    spec = {**create.spec, "code": code_spec(create.code, sha256="a" * 64, size=len(ZIP))}
    body = function_body(create.namespace, create.name, spec, create.annotations)
    function = check_function(body)
    assert function.spec.code.zip is not None and function.spec.code.zip.size == len(ZIP)
    assert function.spec.description == "resizes"
    assert (function.spec.timeout_seconds, function.spec.memory_mb) == (30, 256)
    assert function.spec.environment == {"MODE": "fast"}
    assert function.spec.tracing.mode == "Active"
    assert function.metadata.annotations[ROLE_ANNOTATION] == ROLE
    assert function.metadata.annotations[TAGS] == '{"team":"media"}'
    assert body["apiVersion"] == "kfaas.dev/v1alpha1" and body["kind"] == "Function"


def test_an_image_function_takes_its_handler_from_image_config() -> None:
    request = {
        "FunctionName": "img",
        "Role": ROLE,
        "PackageType": "Image",
        "Code": {"ImageUri": "registry.example/fn@sha256:" + "b" * 64},
        "ImageConfig": {"Command": ["app.handler"]},
    }
    create = parse_create(request, "default")
    assert create.spec == {"runtime": "python3.11", "handler": "app.handler"}
    assert code_spec(create.code) == {"image": "registry.example/fn@sha256:" + "b" * 64}


@pytest.mark.parametrize(
    ("change", "parameter"),
    [
        ({"FunctionName": "Upper_Case"}, "FunctionName"),
        ({"FunctionName": "fn:1"}, "FunctionName"),
        ({"FunctionName": "bad name!"}, "FunctionName"),
        ({"Runtime": "nodejs20.x"}, "Runtime"),
        ({"Handler": None}, "Handler"),
        ({"Role": None}, "Role"),
        ({"Code": {}}, "Code"),
        ({"Code": {"ZipFile": "not base64!"}}, "ZipFile"),
        ({"Code": {"ImageUri": "r/fn:1"}}, "PackageType"),
        ({"Code": {"S3Bucket": "b", "S3Key": "k"}}, "S3Bucket"),
        ({"PackageType": "Docker"}, "PackageType"),
        ({"Timeout": 901}, "Timeout"),
        ({"Timeout": "30"}, "Timeout"),
        ({"MemorySize": 64}, "MemorySize"),
        ({"Description": "x" * 257}, "Description"),
        ({"Environment": {"Variables": {"1BAD": "x"}}}, "Environment"),
        ({"Environment": "MODE=fast"}, "Environment"),
        ({"TracingConfig": {"Mode": "Sometimes"}}, "TracingConfig"),
        ({"Tags": {"aws:reserved": "x"}}, "Tags"),
        ({"Publish": "yes"}, "Publish"),
        ({"NotAParameter": 1}, "NotAParameter"),
    ],
)
def test_create_refuses_naming_the_parameter(change: dict[str, Any], parameter: str) -> None:
    request = {key: value for key, value in {**BASE, **change}.items() if value is not None}

    def build() -> Any:
        create = parse_create(request, "default")
        spec = {**create.spec, "code": code_spec(create.code, sha256="a" * 64, size=1)}
        return check_function(function_body(create.namespace, create.name, spec, {}))

    with pytest.raises(InvalidParameter) as refused:
        build()
    assert refused.value.parameter == parameter
    assert parameter in message(refused.value)


def test_refusals_say_what_to_use_instead() -> None:
    with pytest.raises(InvalidParameter) as refused:
        parse_create({**BASE, "DeadLetterConfig": {"TargetArn": "arn:aws:sqs:::q"}}, "default")
    assert "PutFunctionEventInvokeConfig" in str(refused.value)


def test_a_configuration_update_replaces_only_what_it_names() -> None:
    spec = {
        "runtime": "python3.12",
        "handler": "app.handler",
        "code": {"inline": {"app.py": "x"}},
        "environment": {"OLD": "1"},
        "description": "old",
        "scaling": {"maxInstances": 3},
    }
    update = parse_configuration_update(
        {"Environment": {"Variables": {"NEW": "2"}}, "Description": "", "RevisionId": "r"},
        spec,
        {"other": "kept"},
    )
    assert update.spec == {
        "runtime": "python3.12",
        "handler": "app.handler",
        "code": {"inline": {"app.py": "x"}},
        "environment": {"NEW": "2"},
        "scaling": {"maxInstances": 3},
    }
    assert update.annotations == {"other": "kept"} and update.revision_id == "r"
    assert spec["environment"] == {"OLD": "1"}  # the read spec is left as it was
    cleared = parse_configuration_update({"Environment": {}}, spec, {})
    assert cleared.spec["environment"] == {}


def test_a_code_update_keeps_the_package_type() -> None:
    zip_spec = {"code": {"inline": {"a.py": ""}}}
    with pytest.raises(InvalidParameter) as refused:
        parse_code_update({"ImageUri": "r/fn:2"}, zip_spec)
    assert refused.value.parameter == "PackageType"
    with pytest.raises(InvalidParameter) as refused:
        parse_code_update({"ZipFile": SAMPLES["ZipFile"]}, {"code": {"image": "r/fn:1"}})
    assert refused.value.parameter == "PackageType"
    update = parse_code_update({"ZipFile": SAMPLES["ZipFile"], "DryRun": True}, zip_spec)
    assert update.code == CodeSource(zip_file=b"PK other") and update.dry_run


def test_provided_runtimes_are_one() -> None:
    create = parse_create({**BASE, "Runtime": "provided.al2023", "Handler": "x"}, "default")
    assert create.spec["runtime"] == "provided"
