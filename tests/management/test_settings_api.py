"""Concurrency, EventInvokeConfig, tags and account settings through boto3 (ADR 024 slice 5).

Functions are written into the gateway's object store as ``kubectl apply`` would, so these tests
stand on the store alone; each operation is judged by what boto3 returns and by the object left.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError
from management_gateway import ManagementGateway as Gateway
from management_gateway import apply_function

from kfaas.lambda_shapes import object_facts, revision_id
from kfaas.object_store import FUNCTIONS

ARN = "arn:aws:lambda:us-east-1:default:function:resize"


def stored(gateway: Gateway, name: str = "resize") -> dict[str, Any]:
    body: dict[str, Any] = gateway.run(gateway.objects.get(FUNCTIONS, "default", name))
    return body


def error_of(caught: pytest.ExceptionInfo[ClientError]) -> tuple[str, str]:
    error = caught.value.response["Error"]
    return error["Code"], error["Message"]


# -- Concurrency -------------------------------------------------------------------------------


def test_reserved_concurrency_is_put_read_and_deleted(
    management_gateway: Gateway, lambda_api: Any
) -> None:
    apply_function(management_gateway)
    assert "ReservedConcurrentExecutions" not in lambda_api.get_function_concurrency(
        FunctionName="resize"
    )
    answer = lambda_api.put_function_concurrency(
        FunctionName="resize", ReservedConcurrentExecutions=7
    )
    assert answer["ReservedConcurrentExecutions"] == 7
    assert stored(management_gateway)["spec"]["concurrency"]["reserved"] == 7
    assert (
        lambda_api.get_function_concurrency(FunctionName=ARN)["ReservedConcurrentExecutions"] == 7
    )
    lambda_api.delete_function_concurrency(FunctionName="resize")
    assert "reserved" not in stored(management_gateway)["spec"]["concurrency"]
    assert "ReservedConcurrentExecutions" not in lambda_api.get_function_concurrency(
        FunctionName="resize"
    )


def test_concurrency_errors_are_lambdas(management_gateway: Gateway, lambda_api: Any) -> None:
    apply_function(management_gateway)
    with pytest.raises(lambda_api.exceptions.ResourceNotFoundException):
        lambda_api.put_function_concurrency(FunctionName="absent", ReservedConcurrentExecutions=1)
    with pytest.raises(lambda_api.exceptions.ResourceNotFoundException):
        lambda_api.get_function_concurrency(FunctionName="absent")
    with pytest.raises(lambda_api.exceptions.InvalidParameterValueException) as caught:
        lambda_api.put_function_concurrency(FunctionName="resize:1", ReservedConcurrentExecutions=1)
    assert "FunctionName" in error_of(caught)[1]


# -- Event invoke config -----------------------------------------------------------------------


def test_event_invoke_config_put_update_get_list_delete(
    management_gateway: Gateway, lambda_api: Any
) -> None:
    apply_function(management_gateway)
    apply_function(management_gateway, "audit")
    with pytest.raises(lambda_api.exceptions.ResourceNotFoundException):
        lambda_api.get_function_event_invoke_config(FunctionName="resize")
    put = lambda_api.put_function_event_invoke_config(
        FunctionName="resize",
        MaximumRetryAttempts=1,
        DestinationConfig={
            "OnSuccess": {"Destination": "arn:aws:lambda:us-east-1:default:function:audit"},
            "OnFailure": {"Destination": "arn:kfaas:redis:::stream/failures"},
        },
    )
    assert put["FunctionArn"] == ARN + ":$LATEST"
    assert put["MaximumRetryAttempts"] == 1 and put["MaximumEventAgeInSeconds"] == 21600
    assert stored(management_gateway)["spec"]["async"] == {
        "maximumRetryAttempts": 1,
        "maximumEventAgeSeconds": 21600,
        "onSuccess": {"function": {"name": "audit"}},
        "onFailure": {"redis": {"stream": "failures"}},
    }
    updated = lambda_api.update_function_event_invoke_config(
        FunctionName="resize",
        MaximumEventAgeInSeconds=120,
        DestinationConfig={"OnSuccess": {}},
    )
    assert updated["MaximumRetryAttempts"] == 1 and updated["MaximumEventAgeInSeconds"] == 120
    assert updated["DestinationConfig"] == {
        "OnSuccess": {},
        "OnFailure": {"Destination": "arn:kfaas:redis:::stream/failures"},
    }
    got = lambda_api.get_function_event_invoke_config(FunctionName="resize", Qualifier="$LATEST")
    assert got["DestinationConfig"] == updated["DestinationConfig"]
    assert got["LastModified"] == updated["LastModified"]
    listed = lambda_api.list_function_event_invoke_configs(FunctionName="resize")
    assert [c["FunctionArn"] for c in listed["FunctionEventInvokeConfigs"]] == [ARN + ":$LATEST"]
    # Put replaces: what it does not name returns to Lambda's defaults.
    replaced = lambda_api.put_function_event_invoke_config(
        FunctionName="resize", MaximumEventAgeInSeconds=60
    )
    assert replaced["MaximumRetryAttempts"] == 2
    assert replaced["DestinationConfig"] == {"OnSuccess": {}, "OnFailure": {}}
    lambda_api.delete_function_event_invoke_config(FunctionName="resize")
    assert "async" not in stored(management_gateway)["spec"]
    with pytest.raises(lambda_api.exceptions.ResourceNotFoundException):
        lambda_api.delete_function_event_invoke_config(FunctionName="resize")
    assert (
        lambda_api.list_function_event_invoke_configs(FunctionName="resize")[
            "FunctionEventInvokeConfigs"
        ]
        == []
    )


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"Qualifier": "3"}, "Qualifier"),
        ({"FunctionName": "resize:live"}, "Qualifier"),
        ({"MaximumEventAgeInSeconds": 30000}, "MaximumEventAgeInSeconds"),
        ({"MaximumRetryAttempts": 5}, "MaximumRetryAttempts"),
        (
            {"DestinationConfig": {"OnFailure": {"Destination": "arn:aws:sqs:::q"}}},
            "DestinationConfig.OnFailure",
        ),
        (
            {
                "DestinationConfig": {
                    "OnFailure": {"Destination": "arn:aws:lambda:us-east-1:other:function:f"}
                }
            },
            "DestinationConfig.OnFailure",
        ),
    ],
)
def test_an_event_invoke_config_kfaas_cannot_keep_is_refused_naming_it(
    management_gateway: Gateway, lambda_api: Any, arguments: dict[str, Any], named: str
) -> None:
    apply_function(management_gateway)
    with pytest.raises(lambda_api.exceptions.InvalidParameterValueException) as caught:
        lambda_api.put_function_event_invoke_config(**{"FunctionName": "resize", **arguments})
    assert named in error_of(caught)[1]
    assert "async" not in stored(management_gateway)["spec"]


def test_a_destination_function_must_be_a_valid_function(
    management_gateway: Gateway, lambda_api: Any
) -> None:
    """The model the CRD is generated from checks the result, naming the field."""
    apply_function(management_gateway)
    with pytest.raises(lambda_api.exceptions.InvalidParameterValueException) as caught:
        lambda_api.put_function_event_invoke_config(
            FunctionName="resize",
            DestinationConfig={
                "OnSuccess": {"Destination": "arn:aws:lambda:us-east-1:default:function:Not_Dns"}
            },
        )
    assert "onSuccess.function.name" in error_of(caught)[1]


# -- Tags ----------------------------------------------------------------------------------------


def test_tags_move_neither_revision_id_nor_last_modified(
    management_gateway: Gateway, lambda_api: Any
) -> None:
    before = apply_function(management_gateway)
    lambda_api.tag_resource(Resource=ARN, Tags={"team": "media", "cost centre": "42"})
    lambda_api.tag_resource(Resource=ARN, Tags={"team": "video"})
    assert lambda_api.list_tags(Resource=ARN)["Tags"] == {"team": "video", "cost centre": "42"}
    lambda_api.untag_resource(Resource=ARN, TagKeys=["cost centre", "absent"])
    assert lambda_api.list_tags(Resource=ARN)["Tags"] == {"team": "video"}
    after = stored(management_gateway)
    assert after["metadata"]["annotations"]["kfaas.dev/tags"] == '{"team":"video"}'
    facts, was = object_facts(after), object_facts(before)
    assert revision_id(facts.uid, facts.generation) == revision_id(was.uid, was.generation)
    assert facts.spec_writes == was.spec_writes
    lambda_api.untag_resource(Resource=ARN, TagKeys=["team"])
    assert "kfaas.dev/tags" not in stored(management_gateway)["metadata"].get("annotations", {})


def test_tag_errors_are_lambdas(management_gateway: Gateway, lambda_api: Any) -> None:
    apply_function(management_gateway)
    with pytest.raises(lambda_api.exceptions.ResourceNotFoundException):
        lambda_api.list_tags(Resource=ARN.replace("resize", "absent"))
    with pytest.raises(lambda_api.exceptions.InvalidParameterValueException) as caught:
        lambda_api.tag_resource(Resource=ARN, Tags={"aws:owner": "x"})
    assert "Tags" in error_of(caught)[1]
    with pytest.raises(lambda_api.exceptions.InvalidParameterValueException) as caught:
        lambda_api.tag_resource(Resource=ARN + ":1", Tags={"a": "b"})
    assert "Resource" in error_of(caught)[1]
    with pytest.raises(lambda_api.exceptions.InvalidParameterValueException):
        lambda_api.list_tags(Resource="arn:aws:sqs:us-east-1:123456789012:queue")
    management_gateway.run(_hand_edit_tags(management_gateway, "{not json"))
    with pytest.raises(lambda_api.exceptions.ResourceConflictException) as caught:
        lambda_api.list_tags(Resource=ARN)
    assert "kubectl" in error_of(caught)[1]


async def _hand_edit_tags(gateway: Gateway, value: str) -> None:
    body = await gateway.objects.get(FUNCTIONS, "default", "resize")
    body["metadata"].setdefault("annotations", {})["kfaas.dev/tags"] = value
    await gateway.objects.replace(FUNCTIONS, body, field_manager="kubectl")


# -- Account settings ----------------------------------------------------------------------------


def test_account_settings_count_the_functions(management_gateway: Gateway, lambda_api: Any) -> None:
    empty = lambda_api.get_account_settings()
    assert empty["AccountUsage"] == {"TotalCodeSize": 0, "FunctionCount": 0}
    apply_function(management_gateway, scaling={"maxInstances": 3})
    apply_function(
        management_gateway, "other", "team-b", concurrency={"reserved": 1, "perInstance": 2}
    )
    settings = lambda_api.get_account_settings()
    assert settings["AccountUsage"]["FunctionCount"] == 2
    assert settings["AccountUsage"]["TotalCodeSize"] > 0
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 3 + 1
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 3
    assert settings["AccountLimit"]["CodeSizeZipped"] == 50 * 1024 * 1024
