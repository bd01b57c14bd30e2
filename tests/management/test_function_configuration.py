"""Lambda's FunctionConfiguration and GetFunction answers, judged by botocore's own parser.

Each shape built by ``kfaas.lambda_shapes`` is sent through the parser boto3 uses for the
operation, so a field botocore would drop, mistype or fail on shows here, without a gateway.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import uuid
import zipfile
from typing import Any

import botocore.session
import pytest
from botocore.parsers import create_parser

from kfaas.code_digests import CodeDigest
from kfaas.lambda_code import (
    CodeFacts,
    canonical_zip,
    files_code,
    image_code,
    stored_code,
    zip_code,
)
from kfaas.lambda_shapes import (
    ObjectFacts,
    function_configuration,
    get_function_response,
    last_modified,
    object_facts,
    revision_id,
)
from kfaas.manifests import Function, parse_manifest

MODEL = botocore.session.get_session().get_service_model("lambda")
UID = "0b5f3c9e-1d2a-4c6b-8e7f-9a0b1c2d3e4f"


def parsed(operation: str, body: object, status: int = 200) -> dict[str, Any]:
    """What boto3 returns for this HTTP answer to ``operation``."""
    response = {
        "status_code": status,
        "headers": {"x-amzn-RequestId": "req-1", "Content-Type": "application/json"},
        "body": json.dumps(body).encode(),
    }
    output = MODEL.operation_model(operation).output_shape
    result: dict[str, Any] = create_parser("rest-json").parse(response, output)
    return result


def function(**spec: Any) -> Function:
    doc = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "thumbnail", "namespace": "media"},
        "spec": {
            "runtime": "python3.12",
            "handler": "app.handler",
            "code": {"inline": {"app.py": "def handler(event, context):\n    return 1\n"}},
            **spec,
        },
    }
    manifest = parse_manifest(doc)
    assert isinstance(manifest, Function)
    return manifest


def ready_status(status: str, reason: str = "Ready", generation: int = 1) -> dict[str, Any]:
    return {
        "observedGeneration": generation,
        "codeSha256": "ab" * 32,
        "conditions": [{"type": "Ready", "status": status, "reason": reason, "message": "m"}],
    }


FACTS = ObjectFacts(
    uid=UID,
    generation=1,
    created="2026-11-30T05:59:58Z",
    spec_writes=("2026-11-30T06:00:01Z",),
    status=ready_status("True"),
)


def test_get_function_configuration_parses_as_boto3_returns_it() -> None:
    fn = function(environment={"LOG_LEVEL": "info"}, memoryMB=256, timeoutSeconds=30)
    code = files_code({name: text.encode() for name, text in (fn.spec.code.inline or {}).items()})
    body = function_configuration(fn, FACTS, code, region="eu-west-1", description="thumbs")

    answer = parsed("GetFunctionConfiguration", body)

    assert answer["FunctionName"] == "thumbnail"
    assert answer["FunctionArn"] == "arn:aws:lambda:eu-west-1:media:function:thumbnail"
    assert answer["Runtime"] == "python3.12"
    assert answer["Handler"] == "app.handler"
    assert answer["MemorySize"] == 256 and answer["Timeout"] == 30
    assert answer["CodeSize"] == code.size and isinstance(answer["CodeSize"], int)
    assert answer["CodeSha256"] == code.sha256
    assert answer["LastModified"] == "2026-11-30T06:00:01.000+0000"
    assert answer["Version"] == "$LATEST"
    assert answer["RevisionId"] == revision_id(UID, 1)
    assert answer["State"] == "Active" and answer["LastUpdateStatus"] == "Successful"
    assert answer["PackageType"] == "Zip"
    assert answer["Environment"] == {"Variables": {"LOG_LEVEL": "info"}}
    assert answer["TracingConfig"] == {"Mode": "PassThrough"}
    assert answer["Role"] == "arn:aws:iam::media:role/default"
    assert answer["Description"] == "thumbs"


def test_every_field_built_is_one_botocore_knows() -> None:
    body = function_configuration(
        function(environment={"A": "b"}), FACTS, zip_code(b"z"), region="r"
    )
    members = set(MODEL.shape_for("FunctionConfiguration").members)
    assert set(body) <= members


def test_a_published_version_has_a_qualified_arn() -> None:
    body = function_configuration(
        function(), FACTS, zip_code(b"z"), region="us-east-1", version="3"
    )
    answer = parsed("GetFunctionConfiguration", body)
    assert answer["Version"] == "3"
    assert answer["FunctionArn"].endswith(":function:thumbnail:3")


def test_get_function_carries_code_location_tags_and_concurrency() -> None:
    configuration = function_configuration(function(), FACTS, zip_code(b"z"), region="us-east-1")
    body = get_function_response(
        configuration, "http://gw/code/abc", tags={"team": "media"}, reserved=5
    )
    answer = parsed("GetFunction", body)
    assert answer["Configuration"]["RevisionId"] == configuration["RevisionId"]
    assert answer["Code"] == {"RepositoryType": "S3", "Location": "http://gw/code/abc"}
    assert answer["Tags"] == {"team": "media"}
    assert answer["Concurrency"] == {"ReservedConcurrentExecutions": 5}


def test_get_function_leaves_out_what_is_not_set() -> None:
    configuration = function_configuration(function(), FACTS, zip_code(b"z"), region="us-east-1")
    answer = parsed("GetFunction", get_function_response(configuration, "http://gw/code/abc"))
    assert "Tags" not in answer and "Concurrency" not in answer
    assert "Environment" not in answer["Configuration"]


def test_create_function_answers_201_with_the_configuration() -> None:
    configuration = function_configuration(
        function(), ObjectFacts(uid=UID, generation=1, created="2026-11-30T06:00:00Z"),
        zip_code(b"z"), region="us-east-1",
    )  # fmt: skip
    answer = parsed("CreateFunction", configuration, status=201)
    assert answer["State"] == "Pending"
    assert answer["StateReasonCode"] == "Creating"
    assert answer["LastUpdateStatus"] == "InProgress"


# -- RevisionId, LastModified -----------------------------------------------------------------


def test_revision_id_is_a_uuid_that_follows_generation_and_uid() -> None:
    first = revision_id(UID, 1)
    assert str(uuid.UUID(first)) == first
    assert revision_id(UID, 1) == first
    assert revision_id(UID, 2) != first
    assert revision_id("another-uid", 1) != first


def test_facts_read_from_an_api_object_ignore_status_writes() -> None:
    body = {
        "metadata": {
            "uid": UID,
            "generation": 4,
            "creationTimestamp": "2026-11-29T10:00:00Z",
            "managedFields": [
                {"manager": "kubectl", "operation": "Apply", "time": "2026-11-29T11:00:00Z",
                 "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {}, "f:metadata": {}}},
                {"manager": "kfaas-operator", "operation": "Update", "subresource": "status",
                 "time": "2026-11-30T01:00:00Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:status": {}}},
                {"manager": "kfaas-gateway-tags", "operation": "Update",
                 "time": "2026-11-30T02:00:00Z", "fieldsType": "FieldsV1",
                 "fieldsV1": {"f:metadata": {"f:annotations": {}}}},
            ],
        },
        "status": {"observedGeneration": 4},
    }  # fmt: skip
    facts = object_facts(body)
    assert facts.generation == 4 and facts.uid == UID
    assert facts.spec_writes == ("2026-11-29T11:00:00Z",)
    assert last_modified(facts) == "2026-11-29T11:00:00.000+0000"


def test_last_modified_falls_back_to_creation_and_keeps_milliseconds() -> None:
    assert last_modified(ObjectFacts(UID, 1, "2026-11-30T06:00:00Z")) == (
        "2026-11-30T06:00:00.000+0000"
    )
    facts = ObjectFacts(
        UID, 1, "2026-11-30T06:00:00Z", spec_writes=("2026-11-30T08:00:00.25+02:00",)
    )
    assert last_modified(facts) == "2026-11-30T06:00:00.250+0000"


def test_a_time_without_zone_is_refused() -> None:
    with pytest.raises(ValueError, match="time zone"):
        last_modified(ObjectFacts(UID, 1, "2026-11-30T06:00:00"))


# -- Code -------------------------------------------------------------------------------------


def test_canonical_zip_is_deterministic_and_holds_the_files() -> None:
    files = {"b.py": b"B", "app.py": b"A", "bootstrap": b"#!/bin/sh\n"}
    package = canonical_zip(files)
    assert canonical_zip(dict(reversed(list(files.items())))) == package
    with zipfile.ZipFile(io.BytesIO(package)) as archive:
        assert archive.namelist() == ["app.py", "b.py", "bootstrap"]
        assert archive.read("app.py") == b"A"
        assert archive.getinfo("bootstrap").external_attr >> 16 == 0o100755
        assert archive.getinfo("app.py").external_attr >> 16 == 0o100644


def test_code_sha256_is_lambdas_base64_digest_of_the_zip() -> None:
    package = canonical_zip({"app.py": b"A"})
    facts = files_code({"app.py": b"A"})
    assert facts == CodeFacts(
        base64.b64encode(hashlib.sha256(package).digest()).decode(), len(package)
    )
    assert (
        zip_code(b"uploaded").sha256
        == base64.b64encode(hashlib.sha256(b"uploaded").digest()).decode()
    )


def test_image_code_gives_the_pinned_digest_and_no_size() -> None:
    pinned = image_code("registry.example/fn@sha256:" + "c" * 64)
    assert pinned == CodeFacts("c" * 64, 0, "Image")
    tagged = image_code("registry.example/fn:1.4")
    assert tagged.package_type == "Image" and len(tagged.sha256) == 64
    answer = parsed(
        "GetFunctionConfiguration",
        function_configuration(function(), FACTS, pinned, region="us-east-1"),
    )
    assert answer["PackageType"] == "Image" and answer["CodeSize"] == 0


def test_stored_code_is_described_without_its_bytes() -> None:
    package = canonical_zip({"app.py": b"A"})
    assert stored_code(CodeDigest.of(package), len(package)) == zip_code(package)
