"""PublishVersion, ListVersionsByFunction and the alias operations through boto3 (ADR 024).

A deploy script's calls against a gateway serving kfaas dev's folder stores: versions are
numbered and never renumbered, publishing nothing new returns the newest version, Lambda's
preconditions hold, listings page; aliases follow Lambda's rules and fail with the modeled
exceptions; boto3's ``published_version_active`` waiter follows the status the test writes as the
operator would.
"""

from __future__ import annotations

from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError, WaiterError
from management_gateway import ManagementGateway, handler_zip
from version_digests import code_sha256

from kfaas import dir_store, object_store
from kfaas.lambda_versions import LAST_VERSION_ANNOTATION

ROLE = "arn:aws:iam::123456789012:role/deployer"


def create(client: Any, name: str = "thumbnail", code: str = "return 1") -> dict[str, Any]:
    answer: dict[str, Any] = client.create_function(
        FunctionName=name, Role=ROLE, Runtime="python3.12", Handler="app.handler",
        Code={"ZipFile": handler_zip(code)},
    )  # fmt: skip
    return answer


def update_code(client: Any, code: str, name: str = "thumbnail") -> dict[str, Any]:
    answer: dict[str, Any] = client.update_function_code(
        FunctionName=name, ZipFile=handler_zip(code)
    )
    return answer


def error_of(call: Any, **kwargs: Any) -> dict[str, Any]:
    with pytest.raises(ClientError) as refused:
        call(**kwargs)
    error: dict[str, Any] = refused.value.response["Error"]
    error["Status"] = refused.value.response["ResponseMetadata"]["HTTPStatusCode"]
    return error


def test_publish_numbers_versions_and_never_reuses_one(
    lambda_api: Any, management_gateway: ManagementGateway
) -> None:
    latest = create(lambda_api)
    first = lambda_api.publish_version(FunctionName="thumbnail", Description="first")
    assert first["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert (first["Version"], first["Description"]) == ("1", "first")
    assert first["FunctionArn"] == latest["FunctionArn"] + ":1"
    assert first["CodeSha256"] == latest["CodeSha256"]
    assert first["State"] == "Pending"
    # Nothing changed: Lambda answers with the newest version.
    again = lambda_api.publish_version(FunctionName="thumbnail")
    assert (again["Version"], again["RevisionId"]) == ("1", first["RevisionId"])
    update_code(lambda_api, "return 2")
    second = lambda_api.publish_version(FunctionName="thumbnail")
    assert second["Version"] == "2" and second["CodeSha256"] != first["CodeSha256"]
    # Deleted as `kubectl delete functionversion` would (DeleteFunction with a Qualifier: below).
    management_gateway.run(
        management_gateway.objects.delete(object_store.FUNCTION_VERSIONS, "default", "thumbnail.2")
    )
    update_code(lambda_api, "return 3")
    third = lambda_api.publish_version(FunctionName="thumbnail")
    assert third["Version"] == "3"  # 2 was deleted, and is not given again
    # $LATEST is untouched by publishing: same RevisionId and LastModified as after the update.
    now = lambda_api.get_function_configuration(FunctionName="thumbnail")
    assert now["Version"] == "$LATEST"
    stored = management_gateway.run(
        management_gateway.objects.get(object_store.FUNCTIONS, "default", "thumbnail")
    )
    assert stored["metadata"]["annotations"][LAST_VERSION_ANNOTATION] == "3"
    version = management_gateway.run(
        management_gateway.objects.get(object_store.FUNCTION_VERSIONS, "default", "thumbnail.3")
    )
    assert version["metadata"]["labels"] == {
        "kfaas.dev/function": "thumbnail",
        "kfaas.dev/version": "3",
    }
    assert version["metadata"]["ownerReferences"][0]["uid"] == stored["metadata"]["uid"]
    assert "zip" in version["spec"]["template"]["code"]


def test_publish_does_not_answer_with_a_version_whose_digest_is_not_its_code_s(
    lambda_api: Any, management_gateway: ManagementGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ADR 031: the newest version, re-applied by hand (as kubectl can in a cluster, whose API
    server cannot check the digest) with the same template but another codeSha256, is never
    served: publishing the unchanged function makes a new version instead of answering with it."""
    latest = create(lambda_api)
    assert lambda_api.publish_version(FunctionName="thumbnail")["Version"] == "1"
    objects = management_gateway.objects
    published = management_gateway.run(
        objects.get(object_store.FUNCTION_VERSIONS, "default", "thumbnail.1")
    )
    management_gateway.run(objects.delete(object_store.FUNCTION_VERSIONS, "default", "thumbnail.1"))
    monkeypatch.setitem(dir_store.VALIDATORS, object_store.FUNCTION_VERSIONS, lambda body: None)
    lying = {"metadata": {key: published["metadata"][key] for key in ("name", "namespace")},
             "spec": published["spec"] | {"codeSha256": "c2hh"}}  # fmt: skip
    management_gateway.run(objects.create(object_store.FUNCTION_VERSIONS, lying, field_manager="k"))
    read = lambda_api.get_function_configuration(FunctionName="thumbnail", Qualifier="1")
    assert read["CodeSha256"] == "c2hh"  # what the object states; its status will say why
    again = lambda_api.publish_version(FunctionName="thumbnail")
    assert (again["Version"], again["CodeSha256"]) == ("2", latest["CodeSha256"])


def test_publish_keeps_latest_revision_and_last_modified(lambda_api: Any) -> None:
    create(lambda_api)
    before = lambda_api.get_function_configuration(FunctionName="thumbnail")
    lambda_api.publish_version(FunctionName="thumbnail")
    after = lambda_api.get_function_configuration(FunctionName="thumbnail")
    assert (after["RevisionId"], after["LastModified"]) == (
        before["RevisionId"],
        before["LastModified"],
    )


def test_publish_preconditions(lambda_api: Any) -> None:
    created = create(lambda_api)
    stale = error_of(
        lambda_api.publish_version, FunctionName="thumbnail", RevisionId="not-the-revision"
    )
    assert (stale["Code"], stale["Status"]) == ("PreconditionFailedException", 412)
    other = error_of(lambda_api.publish_version, FunctionName="thumbnail", CodeSha256="c2hh")
    assert other["Code"] == "InvalidParameterValueException" and "CodeSha256" in other["Message"]
    published = lambda_api.publish_version(
        FunctionName="thumbnail",
        CodeSha256=created["CodeSha256"],
        RevisionId=created["RevisionId"],
    )
    assert published["Version"] == "1"
    missing = error_of(lambda_api.publish_version, FunctionName="missing")
    assert missing["Code"] == "ResourceNotFoundException"
    qualified = error_of(lambda_api.publish_version, FunctionName="thumbnail:1")
    assert qualified["Code"] == "InvalidParameterValueException"
    elsewhere = error_of(
        lambda_api.publish_version, FunctionName="thumbnail", PublishTo="LATEST_PUBLISHED"
    )
    assert elsewhere["Code"] == "InvalidParameterValueException"
    assert "PublishTo" in elsewhere["Message"]


def test_a_version_reads_as_lambda_and_waits_until_active(
    lambda_api: Any, management_gateway: ManagementGateway
) -> None:
    create(lambda_api)
    lambda_api.update_function_configuration(FunctionName="thumbnail", Timeout=30)
    lambda_api.publish_version(FunctionName="thumbnail", Description="v1")
    # The template is frozen: a later change of $LATEST is not the version's.
    lambda_api.update_function_configuration(FunctionName="thumbnail", Timeout=60)
    version = lambda_api.get_function_configuration(FunctionName="thumbnail", Qualifier="1")
    assert (version["Version"], version["Timeout"], version["Description"]) == ("1", 30, "v1")
    waiter = lambda_api.get_waiter("published_version_active")
    with pytest.raises(WaiterError):
        waiter.wait(
            FunctionName="thumbnail", Qualifier="1", WaiterConfig={"Delay": 0, "MaxAttempts": 2}
        )
    ready = {"type": "Ready", "status": "True", "reason": "Ready", "observedGeneration": 1}
    management_gateway.run(
        management_gateway.objects.write_status(
            object_store.FUNCTION_VERSIONS, "default", "thumbnail.1",
            {"conditions": [ready], "observedGeneration": 1, "codeSha256": "0" * 64},
        )
    )  # fmt: skip
    waiter.wait(FunctionName="thumbnail", Qualifier="1", WaiterConfig={"Delay": 0})
    active = lambda_api.get_function_configuration(FunctionName="thumbnail:1")
    assert (active["State"], active["LastUpdateStatus"]) == ("Active", "Successful")


def test_list_versions_latest_first_then_by_number_in_pages(lambda_api: Any) -> None:
    create(lambda_api)
    for number in range(2, 5):
        lambda_api.publish_version(FunctionName="thumbnail")
        update_code(lambda_api, f"return {number}")
    listed = lambda_api.list_versions_by_function(FunctionName="thumbnail")
    assert [v["Version"] for v in listed["Versions"]] == ["$LATEST", "1", "2", "3"]
    assert "NextMarker" not in listed
    pages, marker = [], None
    while True:
        page = lambda_api.list_versions_by_function(
            FunctionName="thumbnail", MaxItems=3, **({"Marker": marker} if marker else {})
        )
        pages.append([v["Version"] for v in page["Versions"]])
        marker = page.get("NextMarker")
        if marker is None:
            break
    assert pages == [["$LATEST", "1", "2"], ["3"]]
    paginated = lambda_api.get_paginator("list_versions_by_function").paginate(
        FunctionName="thumbnail", PaginationConfig={"PageSize": 1}
    )
    assert [v["Version"] for page in paginated for v in page["Versions"]] == [
        "$LATEST", "1", "2", "3",
    ]  # fmt: skip
    create(lambda_api, "other")
    foreign = (
        error_of(
            lambda_api.list_versions_by_function, FunctionName="other", Marker=page["NextMarker"]
        )
        if "NextMarker" in page
        else None
    )
    assert foreign is None or foreign["Code"] == "InvalidParameterValueException"
    refused = error_of(lambda_api.list_versions_by_function, FunctionName="thumbnail", Marker="x")
    assert refused["Code"] == "InvalidParameterValueException" and "Marker" in refused["Message"]
    assert error_of(lambda_api.list_versions_by_function, FunctionName="missing")["Status"] == 404


def test_alias_lifecycle(lambda_api: Any) -> None:
    create(lambda_api)
    lambda_api.publish_version(FunctionName="thumbnail")
    update_code(lambda_api, "return 2")
    lambda_api.publish_version(FunctionName="thumbnail")
    created = lambda_api.create_alias(
        FunctionName="thumbnail", Name="live", FunctionVersion="1", Description="prod",
        RoutingConfig={"AdditionalVersionWeights": {"2": 0.1}},
    )  # fmt: skip
    assert created["ResponseMetadata"]["HTTPStatusCode"] == 201
    assert created["AliasArn"].endswith(":function:thumbnail:live")
    assert created["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.1}}
    got = lambda_api.get_alias(FunctionName="thumbnail", Name="live")
    assert got["RevisionId"] == created["RevisionId"] and got["Description"] == "prod"
    # Shift all traffic: the weights go, the description stays.
    shifted = lambda_api.update_alias(
        FunctionName="thumbnail", Name="live", FunctionVersion="2",
        RoutingConfig={"AdditionalVersionWeights": {}}, RevisionId=got["RevisionId"],
    )  # fmt: skip
    assert (shifted["FunctionVersion"], shifted["Description"]) == ("2", "prod")
    assert "RoutingConfig" not in shifted and shifted["RevisionId"] != got["RevisionId"]
    stale = error_of(
        lambda_api.update_alias, FunctionName="thumbnail", Name="live", Description="x",
        RevisionId=got["RevisionId"],
    )  # fmt: skip
    assert (stale["Code"], stale["Status"]) == ("PreconditionFailedException", 412)
    lambda_api.create_alias(FunctionName="thumbnail", Name="edge", FunctionVersion="$LATEST")
    names = [a["Name"] for a in lambda_api.list_aliases(FunctionName="thumbnail")["Aliases"]]
    assert names == ["edge", "live"]
    of_two = lambda_api.list_aliases(FunctionName="thumbnail", FunctionVersion="2")["Aliases"]
    assert [a["Name"] for a in of_two] == ["live"]
    first = lambda_api.list_aliases(FunctionName="thumbnail", MaxItems=1)
    rest = lambda_api.list_aliases(FunctionName="thumbnail", Marker=first["NextMarker"])
    assert [a["Name"] for a in first["Aliases"] + rest["Aliases"]] == ["edge", "live"]
    assert lambda_api.delete_alias(FunctionName="thumbnail", Name="edge")[
        "ResponseMetadata"
    ]["HTTPStatusCode"] == 204  # fmt: skip
    gone = error_of(lambda_api.get_alias, FunctionName="thumbnail", Name="edge")
    assert (gone["Code"], gone["Status"]) == ("ResourceNotFoundException", 404)
    assert error_of(lambda_api.delete_alias, FunctionName="thumbnail", Name="edge")["Status"] == 404


@pytest.mark.parametrize(
    ("request_", "parameter"),
    [
        ({"Name": "Live", "FunctionVersion": "1"}, "Name"),
        ({"Name": "123", "FunctionVersion": "1"}, "Name"),
        ({"Name": "live", "FunctionVersion": "latest"}, "FunctionVersion"),
        (
            {"Name": "live", "FunctionVersion": "$LATEST",
             "RoutingConfig": {"AdditionalVersionWeights": {"1": 0.5}}},
            "RoutingConfig",
        ),
        (
            {"Name": "live", "FunctionVersion": "1",
             "RoutingConfig": {"AdditionalVersionWeights": {"1": 0.5}}},
            "RoutingConfig",
        ),
        (
            {"Name": "live", "FunctionVersion": "1",
             "RoutingConfig": {"AdditionalVersionWeights": {"2": 1.5}}},
            "RoutingConfig",
        ),
    ],
)  # fmt: skip
def test_alias_requests_lambda_refuses_name_the_parameter(
    lambda_api: Any, request_: dict[str, Any], parameter: str
) -> None:
    create(lambda_api)
    lambda_api.publish_version(FunctionName="thumbnail")
    error = error_of(lambda_api.create_alias, FunctionName="thumbnail", **request_)
    assert (error["Code"], error["Status"]) == ("InvalidParameterValueException", 400)
    assert parameter in error["Message"]
    assert lambda_api.list_aliases(FunctionName="thumbnail")["Aliases"] == []


def test_alias_conflicts_and_missing_versions(lambda_api: Any) -> None:
    create(lambda_api)
    lambda_api.publish_version(FunctionName="thumbnail")
    lambda_api.create_alias(FunctionName="thumbnail", Name="live", FunctionVersion="1")
    duplicate = error_of(
        lambda_api.create_alias, FunctionName="thumbnail", Name="live", FunctionVersion="1"
    )
    assert (duplicate["Code"], duplicate["Status"]) == ("ResourceConflictException", 409)
    for version, weights in (("7", {}), ("1", {"7": 0.5})):
        missing = error_of(
            lambda_api.create_alias, FunctionName="thumbnail", Name="canary",
            FunctionVersion=version, RoutingConfig={"AdditionalVersionWeights": weights},
        )  # fmt: skip
        assert missing["Code"] == "ResourceNotFoundException" and ":7" in missing["Message"]
    no_function = error_of(
        lambda_api.create_alias, FunctionName="missing", Name="live", FunctionVersion="1"
    )
    assert no_function["Code"] == "ResourceNotFoundException"


def test_delete_function_with_a_qualifier_deletes_one_version(lambda_api: Any) -> None:
    create(lambda_api)
    lambda_api.publish_version(FunctionName="thumbnail")
    update_code(lambda_api, "return 2")
    lambda_api.publish_version(FunctionName="thumbnail")
    lambda_api.create_alias(
        FunctionName="thumbnail", Name="live", FunctionVersion="2",
        RoutingConfig={"AdditionalVersionWeights": {"1": 0.5}},
    )  # fmt: skip
    # A version an alias routes to (as primary or weighted) cannot be deleted.
    for version in ("1", "2"):
        routed = error_of(lambda_api.delete_function, FunctionName="thumbnail", Qualifier=version)
        assert (routed["Code"], routed["Status"]) == ("ResourceConflictException", 409)
        assert "live" in routed["Message"]
    lambda_api.update_alias(
        FunctionName="thumbnail", Name="live", RoutingConfig={"AdditionalVersionWeights": {}}
    )
    lambda_api.delete_function(FunctionName="thumbnail", Qualifier="1")
    versions = lambda_api.list_versions_by_function(FunctionName="thumbnail")["Versions"]
    assert [v["Version"] for v in versions] == ["$LATEST", "2"]
    assert (
        lambda_api.get_function(FunctionName="thumbnail")["Configuration"]["Version"] == "$LATEST"
    )
    # $LATEST never on its own; a version that is not there (any more) is not found.
    latest = error_of(lambda_api.delete_function, FunctionName="thumbnail", Qualifier="$LATEST")
    assert latest["Code"] == "InvalidParameterValueException"
    for absent in ("1", "5"):
        gone = error_of(lambda_api.delete_function, FunctionName="thumbnail", Qualifier=absent)
        assert gone["Code"] == "ResourceNotFoundException"


def test_deleting_the_function_deletes_its_versions_and_aliases(
    lambda_api: Any, management_gateway: ManagementGateway
) -> None:
    create(lambda_api)
    lambda_api.publish_version(FunctionName="thumbnail")
    lambda_api.create_alias(FunctionName="thumbnail", Name="live", FunctionVersion="1")
    lambda_api.delete_function(FunctionName="thumbnail")
    objects = management_gateway.objects
    for plural in (object_store.FUNCTION_VERSIONS, object_store.FUNCTION_ALIASES):
        assert management_gateway.run(objects.list(plural)) == []
    create(lambda_api)
    assert lambda_api.publish_version(FunctionName="thumbnail")["Version"] == "1"


def test_objects_of_a_deleted_incarnation_are_not_the_function_s(
    lambda_api: Any, management_gateway: ManagementGateway
) -> None:
    # In a cluster the garbage collector removes a deleted function's versions later: one owned
    # by another uid is not listed, and its number is not reused over it.
    create(lambda_api)
    template = {"runtime": "python3.12", "handler": "app.handler",
                "code": {"inline": {"app.py": "x = 1\n"}}}  # fmt: skip
    leftover = {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "FunctionVersion",
        "metadata": {
            "name": "thumbnail.1", "namespace": "default",
            "ownerReferences": [
                {"apiVersion": "kfaas.dev/v1alpha1", "kind": "Function", "name": "thumbnail",
                 "uid": "a-deleted-function"}
            ],
        },
        "spec": {
            "functionName": "thumbnail", "version": 1, "codeSha256": code_sha256(template),
            "configSha256": "0" * 64, "template": template,
        },
    }  # fmt: skip
    objects = management_gateway.objects
    management_gateway.run(
        objects.create(object_store.FUNCTION_VERSIONS, leftover, field_manager="kubectl")
    )
    listed = lambda_api.list_versions_by_function(FunctionName="thumbnail")["Versions"]
    assert [v["Version"] for v in listed] == ["$LATEST"]
    assert lambda_api.publish_version(FunctionName="thumbnail")["Version"] == "2"


@pytest.mark.parametrize(
    ("operation", "handled"),
    [
        ("PublishVersion", {"FunctionName", "CodeSha256", "Description", "RevisionId",
                            "PublishTo"}),
        ("ListVersionsByFunction", {"FunctionName", "Marker", "MaxItems"}),
        ("CreateAlias", {"FunctionName", "Name", "FunctionVersion", "Description",
                         "RoutingConfig"}),
        ("GetAlias", {"FunctionName", "Name"}),
        ("UpdateAlias", {"FunctionName", "Name", "FunctionVersion", "Description",
                         "RoutingConfig", "RevisionId"}),
        ("DeleteAlias", {"FunctionName", "Name"}),
        ("ListAliases", {"FunctionName", "FunctionVersion", "Marker", "MaxItems"}),
    ],
)  # fmt: skip
def test_every_request_member_is_handled(operation: str, handled: set[str]) -> None:
    """A member a newer botocore adds fails here until versions_api maps or refuses it."""
    model = botocore.session.get_session().get_service_model("lambda")
    assert set(model.operation_model(operation).input_shape.members) == handled
