"""CreateFunction, Get*, ListFunctions, Update*, DeleteFunction through boto3 (issue 11, ADR 024).

Each operation is called as a deploy script calls it, against a gateway serving kfaas dev's
folder stores; errors are the modeled exceptions botocore raises (ResourceConflictException,
PreconditionFailedException, ResourceNotFoundException, InvalidParameterValueException naming
the parameter) or, for an oversized zip, the 413 it does not model. The waiters run over states
the test writes as the operator would.
"""

from __future__ import annotations

import base64
import hashlib
import urllib.error
import urllib.request
from typing import Any

import pytest
from botocore.exceptions import ClientError, WaiterError
from management_gateway import ManagementGateway, handler_zip
from version_digests import code_sha256

from kfaas import object_store
from kfaas.lambda_code import canonical_zip

ROLE = "arn:aws:iam::123456789012:role/deployer"


def sha256(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def create(client: Any, name: str = "thumbnail", **extra: Any) -> dict[str, Any]:
    request = {
        "FunctionName": name,
        "Role": ROLE,
        "Runtime": "python3.12",
        "Handler": "app.handler",
        "Code": {"ZipFile": handler_zip()},
        **extra,
    }
    answer: dict[str, Any] = client.create_function(**request)
    return answer


def error_of(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    error: dict[str, Any] = refused.value.response["Error"]
    error["Status"] = refused.value.response["ResponseMetadata"]["HTTPStatusCode"]
    return error


def download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as answer:
        data: bytes = answer.read()
    return data


def test_create_then_read_your_writes(lambda_api: Any) -> None:
    zipped = handler_zip()
    created = create(
        lambda_api,
        Description="makes thumbnails",
        Timeout=30,
        MemorySize=256,
        Environment={"Variables": {"SIZE": "128"}},
        Tags={"team": "media"},
    )
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (created["CodeSha256"], created["CodeSize"]) == (sha256(zipped), len(zipped))
    assert created["State"] == "Pending" and created["LastUpdateStatus"] == "InProgress"
    assert created["Role"] == ROLE and created["Description"] == "makes thumbnails"

    got = lambda_api.get_function(FunctionName="thumbnail")
    configuration = got["Configuration"]
    for field in ("CodeSha256", "RevisionId", "LastModified", "Timeout", "MemorySize"):
        assert configuration[field] == created[field]
    assert configuration["Environment"] == {"Variables": {"SIZE": "128"}}
    assert got["Tags"] == {"team": "media"}
    assert got["Code"]["RepositoryType"] == "S3"
    assert download(got["Code"]["Location"]) == zipped
    alone = lambda_api.get_function_configuration(FunctionName="default/thumbnail")
    del alone["ResponseMetadata"]
    assert alone == configuration
    listed = lambda_api.list_functions()["Functions"]
    assert [f["FunctionName"] for f in listed] == ["thumbnail"]
    assert "State" not in listed[0]


def test_a_location_is_refused_when_tampered_with(lambda_api: Any) -> None:
    create(lambda_api)
    location = lambda_api.get_function(FunctionName="thumbnail")["Code"]["Location"]
    forged = location[:-1] + ("0" if location[-1] != "0" else "1")
    with pytest.raises(urllib.error.HTTPError) as refused:
        download(forged)
    refused.value.close()
    assert refused.value.code == 403


def test_duplicate_create_is_a_conflict(lambda_api: Any) -> None:
    create(lambda_api)
    error = error_of(create, client=lambda_api)
    assert (error["Code"], error["Status"]) == ("ResourceConflictException", 409)


def test_unknown_function_is_not_found(lambda_api: Any) -> None:
    for call in (lambda_api.get_function, lambda_api.get_function_configuration):
        error = error_of(call, FunctionName="missing")
        assert (error["Code"], error["Status"]) == ("ResourceNotFoundException", 404)
    error = error_of(lambda_api.delete_function, FunctionName="missing")
    assert error["Code"] == "ResourceNotFoundException"
    error = error_of(lambda_api.update_function_configuration, FunctionName="missing", Timeout=10)
    assert error["Code"] == "ResourceNotFoundException"


@pytest.mark.parametrize(
    ("extra", "parameter"),
    [
        ({"Runtime": "nodejs20.x"}, "Runtime"),
        ({"FunctionName": "Thumbnail_Maker"}, "FunctionName"),
        ({"MemorySize": 20480}, "MemorySize"),
        ({"DeadLetterConfig": {"TargetArn": "arn:aws:sqs:us-east-1:1:q"}}, "DeadLetterConfig"),
        ({"Layers": ["arn:aws:lambda:us-east-1:1:layer:x:1"]}, "Layers"),
        ({"Code": {"S3Bucket": "bucket", "S3Key": "k.zip"}}, "S3Bucket"),
        ({"Code": {"ZipFile": b"not a zip"}}, "ZipFile"),
        ({"Architectures": ["arm64"]}, "Architectures"),
    ],
)
def test_invalid_parameters_are_named(
    lambda_api: Any, extra: dict[str, Any], parameter: str
) -> None:
    error = error_of(create, client=lambda_api, **extra)
    assert (error["Code"], error["Status"]) == ("InvalidParameterValueException", 400)
    assert parameter in error["Message"]
    assert lambda_api.list_functions()["Functions"] == []


def test_update_configuration_checks_the_revision(lambda_api: Any) -> None:
    created = create(lambda_api)
    stale = created["RevisionId"]
    updated = lambda_api.update_function_configuration(
        FunctionName="thumbnail",
        RevisionId=stale,
        Timeout=60,
        Environment={"Variables": {"MODE": "fast"}},
        Description="now faster",
    )
    assert updated["Timeout"] == 60 and updated["Description"] == "now faster"
    assert updated["Environment"] == {"Variables": {"MODE": "fast"}}
    assert updated["RevisionId"] != stale
    assert updated["CodeSha256"] == created["CodeSha256"]
    error = error_of(
        lambda_api.update_function_configuration,
        FunctionName="thumbnail",
        RevisionId=stale,
        Timeout=5,
    )
    assert (error["Code"], error["Status"]) == ("PreconditionFailedException", 412)
    assert lambda_api.get_function_configuration(FunctionName="thumbnail")["Timeout"] == 60
    error = error_of(
        lambda_api.update_function_configuration, FunctionName="thumbnail", Timeout=901
    )
    assert error["Code"] == "InvalidParameterValueException" and "Timeout" in error["Message"]


def test_update_code_stores_the_new_zip(lambda_api: Any) -> None:
    created = create(lambda_api)
    newer = handler_zip("return 2")
    updated = lambda_api.update_function_code(
        FunctionName="thumbnail", ZipFile=newer, RevisionId=created["RevisionId"]
    )
    assert (updated["CodeSha256"], updated["CodeSize"]) == (sha256(newer), len(newer))
    assert updated["RevisionId"] != created["RevisionId"]
    location = lambda_api.get_function(FunctionName="thumbnail")["Code"]["Location"]
    assert download(location) == newer
    error = error_of(
        lambda_api.update_function_code,
        FunctionName="thumbnail",
        ZipFile=handler_zip(),
        RevisionId=created["RevisionId"],
    )
    assert (error["Code"], error["Status"]) == ("PreconditionFailedException", 412)
    dry = lambda_api.update_function_code(
        FunctionName="thumbnail", ZipFile=handler_zip(), DryRun=True
    )
    assert dry["CodeSha256"] == sha256(newer)  # checked, not written


def test_delete_removes_the_function(lambda_api: Any) -> None:
    create(lambda_api)
    answer = lambda_api.delete_function(FunctionName="thumbnail")
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
    error = error_of(lambda_api.get_function, FunctionName="thumbnail")
    assert error["Code"] == "ResourceNotFoundException"


def test_an_image_function_reports_its_image(lambda_api: Any) -> None:
    image = "registry.example/thumbnail@sha256:" + "c" * 64
    created = lambda_api.create_function(
        FunctionName="imaged",
        Role=ROLE,
        PackageType="Image",
        Code={"ImageUri": image},
        ImageConfig={"Command": ["app.handler"]},
    )
    assert created["PackageType"] == "Image" and created["CodeSha256"] == "c" * 64
    code = lambda_api.get_function(FunctionName="imaged")["Code"]
    assert code == {"RepositoryType": "ECR", "ImageUri": image, "ResolvedImageUri": image}


def test_what_kubectl_wrote_is_visible(management_gateway: ManagementGateway) -> None:
    body = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": "applied", "namespace": "team-a"},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"inline": {"app.py": "x = 1\n"}},
        },
    }
    management_gateway.run(
        management_gateway.objects.create(object_store.FUNCTIONS, body, field_manager="kubectl")
    )
    got = management_gateway.client.get_function(FunctionName="team-a/applied")
    canonical = canonical_zip({"app.py": b"x = 1\n"})
    assert got["Configuration"]["CodeSha256"] == sha256(canonical)
    assert download(got["Code"]["Location"]) == canonical


def _operator_writes(gateway: ManagementGateway, name: str, ready: str, **extra: Any) -> None:
    body = gateway.run(gateway.objects.get(object_store.FUNCTIONS, "default", name))
    status = {
        "observedGeneration": body["metadata"]["generation"],
        "conditions": [{"type": "Ready", "status": ready, **extra}],
    }
    if ready == "True":
        status["codeSha256"] = "d" * 64
    gateway.run(gateway.objects.write_status(object_store.FUNCTIONS, "default", name, status))


def test_waiters_follow_the_operators_status(management_gateway: ManagementGateway) -> None:
    client = management_gateway.client
    create(client)
    fast = {"Delay": 1, "MaxAttempts": 2}
    with pytest.raises(WaiterError):
        client.get_waiter("function_active_v2").wait(FunctionName="thumbnail", WaiterConfig=fast)
    _operator_writes(management_gateway, "thumbnail", "True")
    client.get_waiter("function_active_v2").wait(FunctionName="thumbnail", WaiterConfig=fast)
    client.get_waiter("function_updated_v2").wait(FunctionName="thumbnail", WaiterConfig=fast)

    client.update_function_configuration(FunctionName="thumbnail", MemorySize=512)
    state = client.get_function_configuration(FunctionName="thumbnail")
    assert (state["State"], state["LastUpdateStatus"]) == ("Active", "InProgress")
    with pytest.raises(WaiterError):
        client.get_waiter("function_updated_v2").wait(FunctionName="thumbnail", WaiterConfig=fast)
    _operator_writes(management_gateway, "thumbnail", "True")
    client.get_waiter("function_updated_v2").wait(FunctionName="thumbnail", WaiterConfig=fast)


def test_a_function_that_never_ran_fails_the_active_waiter(
    management_gateway: ManagementGateway,
) -> None:
    client = management_gateway.client
    create(client)
    _operator_writes(
        management_gateway, "thumbnail", "False", reason="RuntimeNotAvailable", message="no image"
    )
    state = client.get_function_configuration(FunctionName="thumbnail")
    assert (state["State"], state["StateReasonCode"]) == ("Failed", "InvalidRuntime")
    with pytest.raises(WaiterError) as failed:
        client.get_waiter("function_active_v2").wait(
            FunctionName="thumbnail", WaiterConfig={"Delay": 1, "MaxAttempts": 3}
        )
    assert "failure" in str(failed.value)


def _publish_by_hand(gateway: ManagementGateway, name: str) -> dict[str, Any]:
    """A FunctionVersion and an alias to it, written as PublishVersion and CreateAlias would."""
    function = gateway.run(gateway.objects.get(object_store.FUNCTIONS, "default", name))
    version = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "FunctionVersion",
        "metadata": {"name": f"{name}.1", "namespace": "default"},
        "spec": {
            "functionName": name,
            "version": 1,
            "description": "first release",
            "codeSha256": code_sha256(function["spec"]),
            "configSha256": "e" * 64,
            "template": function["spec"],
        },
    }
    alias = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "FunctionAlias",
        "metadata": {"name": f"{name}.live", "namespace": "default"},
        "spec": {"functionName": name, "name": "live", "functionVersion": "1"},
    }
    manager = object_store.GATEWAY_MANAGER
    gateway.run(
        gateway.objects.create(object_store.FUNCTION_VERSIONS, version, field_manager=manager)
    )
    gateway.run(gateway.objects.create(object_store.FUNCTION_ALIASES, alias, field_manager=manager))
    return function


def test_qualified_reads_name_a_version_or_an_alias(management_gateway: ManagementGateway) -> None:
    client = management_gateway.client
    created = create(client, Description="head")
    _publish_by_hand(management_gateway, "thumbnail")
    version = client.get_function_configuration(FunctionName="thumbnail", Qualifier="1")
    assert (version["Version"], version["Description"]) == ("1", "first release")
    assert version["FunctionArn"].endswith(":function:thumbnail:1")
    assert version["CodeSha256"] == created["CodeSha256"]
    assert version["RevisionId"] != created["RevisionId"]
    aliased = client.get_function(FunctionName="thumbnail:live")
    assert aliased["Configuration"]["Version"] == "1"
    assert aliased["Configuration"]["FunctionArn"].endswith(":function:thumbnail:live")
    assert download(aliased["Code"]["Location"]) == handler_zip()
    assert client.get_function(FunctionName="thumbnail")["Configuration"]["Version"] == "$LATEST"
    for missing in ("2", "canary"):
        error = error_of(client.get_function, FunctionName="thumbnail", Qualifier=missing)
        assert error["Code"] == "ResourceNotFoundException"

    fast = {"Delay": 1, "MaxAttempts": 2}
    waiter = client.get_waiter("published_version_active")
    with pytest.raises(WaiterError):
        waiter.wait(FunctionName="thumbnail", Qualifier="1", WaiterConfig=fast)
    status = {
        "observedGeneration": 1,
        "conditions": [{"type": "Ready", "status": "True"}],
        "codeSha256": "d" * 64,
    }
    management_gateway.run(
        management_gateway.objects.write_status(
            object_store.FUNCTION_VERSIONS, "default", "thumbnail.1", status
        )
    )
    waiter.wait(FunctionName="thumbnail", Qualifier="1", WaiterConfig=fast)


def test_publish_on_create_and_code_update_and_deleting_a_version(lambda_api: Any) -> None:
    created = create(lambda_api, Publish=True)
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["Version"] == "1" and created["FunctionArn"].endswith(":thumbnail:1")
    newer = handler_zip("return 2")
    updated = lambda_api.update_function_code(FunctionName="thumbnail", ZipFile=newer, Publish=True)
    assert (updated["Version"], updated["CodeSha256"]) == ("2", sha256(newer))
    versions = lambda_api.list_versions_by_function(FunctionName="thumbnail")["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "1", "2"]
    answer = lambda_api.delete_function(FunctionName="thumbnail", Qualifier="1")
    assert answer["ResponseMetadata"]["HTTPStatusCode"] == 204
    error = error_of(lambda_api.get_function, FunctionName="thumbnail", Qualifier="1")
    assert error["Code"] == "ResourceNotFoundException"
    assert lambda_api.get_function(FunctionName="thumbnail:2")["Configuration"]["Version"] == "2"
    lambda_api.delete_function(FunctionName="thumbnail")
    error = error_of(lambda_api.get_function, FunctionName="thumbnail", Qualifier="2")
    assert error["Code"] == "ResourceNotFoundException"
