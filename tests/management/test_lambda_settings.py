"""Per-function settings as spec (kfaas.lambda_settings): destinations, EventInvokeConfig,
reserved concurrency and account settings, the answers judged by botocore's parser."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.parsers import create_parser

from kfaas.lambda_settings import (
    DEFAULT_EVENT_AGE,
    DEFAULT_RETRIES,
    account_settings,
    code_size,
    encode_destination,
    event_invoke_config,
    is_configured,
    parse_destination,
    put_event_invoke_config,
    reserved_concurrency,
    reserved_of,
    update_event_invoke_config,
)
from kfaas.lambda_shapes import InvalidParameter
from kfaas.manifests import AsyncConfig

MODEL = botocore.session.get_session().get_service_model("lambda")
NS, REGION = "media", "eu-west-1"
FN_ARN = f"arn:aws:lambda:{REGION}:{NS}:function:resize"


def parsed(operation: str, body: object) -> dict[str, Any]:
    response = {
        "status_code": 200,
        "headers": {"x-amzn-RequestId": "r", "Content-Type": "application/json"},
        "body": json.dumps(body).encode(),
    }
    output = MODEL.operation_model(operation).output_shape
    result: dict[str, Any] = create_parser("rest-json").parse(response, output)
    return result


# -- Destinations ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("arn", "spec"),
    [
        (FN_ARN, {"function": {"name": "resize"}}),
        (f"{FN_ARN}:3", {"function": {"name": "resize", "qualifier": "3"}}),
        (f"{FN_ARN}:live", {"function": {"name": "resize", "qualifier": "live"}}),
        ("arn:kfaas:kafka:::topic/uploads.dlq", {"kafka": {"topic": "uploads.dlq"}}),
        ("arn:kfaas:redis:::stream/fail:ures/1", {"redis": {"stream": "fail:ures/1"}}),
    ],
)
def test_destination_arns_round_trip(arn: str, spec: dict[str, Any]) -> None:
    assert parse_destination(arn, namespace=NS, parameter="P") == spec
    assert encode_destination(spec, namespace=NS, region=REGION) == arn


def test_a_function_destination_may_be_qualified_at_latest() -> None:
    assert parse_destination(f"{FN_ARN}:$LATEST", namespace=NS, parameter="P") == {
        "function": {"name": "resize"}
    }


@pytest.mark.parametrize(
    ("arn", "why"),
    [
        ("arn:aws:sqs:us-east-1:123456789012:queue", "must be a Lambda function ARN"),
        ("arn:kfaas:kafka:::topic/", "without spaces"),
        ("arn:kfaas:redis:::stream/a b", "without spaces"),
        ("arn:kfaas:redis:::stream/a\nb", "without spaces"),
        (f"arn:aws:lambda:{REGION}:other:function:resize", "namespace 'media'"),
        (f"{FN_ARN}:Live_1", "a version number or an alias"),
        ("arn:kfaas:kafka:::topic/" + "t" * 400, "at most 350"),
    ],
)
def test_a_destination_kfaas_cannot_reach_is_refused_naming_the_parameter(
    arn: str, why: str
) -> None:
    with pytest.raises(InvalidParameter, match=why) as caught:
        parse_destination(arn, namespace=NS, parameter="DestinationConfig.OnFailure")
    assert caught.value.parameter == "DestinationConfig.OnFailure"


def test_a_mapping_destination_cannot_be_a_function() -> None:
    with pytest.raises(InvalidParameter, match="arn:kfaas:kafka"):
        parse_destination(FN_ARN, namespace=NS, parameter="P", functions=False)


# -- EventInvokeConfig -------------------------------------------------------------------------


def test_put_replaces_and_fills_lambdas_defaults() -> None:
    current = {"maximumRetryAttempts": 0, "onSuccess": {"function": {"name": "x"}}}
    new = put_event_invoke_config(
        current, {"MaximumEventAgeInSeconds": 60}, namespace=NS, region=REGION
    )
    assert new == {"maximumRetryAttempts": DEFAULT_RETRIES, "maximumEventAgeSeconds": 60}
    assert is_configured({"async": put_event_invoke_config(None, {}, namespace=NS, region=REGION)})
    AsyncConfig.model_validate(new)


def test_update_merges_each_side_on_its_own() -> None:
    current = {
        "maximumRetryAttempts": 1,
        "maximumEventAgeSeconds": 120,
        "onSuccess": {"function": {"name": "audit"}},
        "onFailure": {"redis": {"stream": "failures"}},
    }
    new = update_event_invoke_config(
        current,
        {
            "MaximumRetryAttempts": 0,
            "DestinationConfig": {
                "OnFailure": {"Destination": "arn:kfaas:kafka:::topic/dlq"},
                "OnSuccess": {},
            },
        },
        namespace=NS,
        region=REGION,
    )
    assert new == {
        "maximumRetryAttempts": 0,
        "maximumEventAgeSeconds": 120,
        "onFailure": {"kafka": {"topic": "dlq"}},
    }


def test_a_destination_with_its_own_server_survives_a_round_trip_of_its_arn() -> None:
    own = {"redis": {"stream": "failures", "url": "redis://:secret@other:6379"}}
    shown = event_invoke_config(
        {"async": {"onFailure": own}}, namespace=NS, name="resize", region=REGION, last_modified=1
    )
    arn = shown["DestinationConfig"]["OnFailure"]["Destination"]
    assert "secret" not in json.dumps(shown)
    new = put_event_invoke_config(
        {"onFailure": own},
        {"DestinationConfig": {"OnFailure": {"Destination": arn}}},
        namespace=NS,
        region=REGION,
    )
    assert new["onFailure"] == own


@pytest.mark.parametrize(
    ("request_body", "parameter"),
    [
        ({"MaximumRetryAttempts": 3}, "MaximumRetryAttempts"),
        ({"MaximumRetryAttempts": True}, "MaximumRetryAttempts"),
        ({"MaximumEventAgeInSeconds": 59}, "MaximumEventAgeInSeconds"),
        ({"MaximumEventAgeInSeconds": "60"}, "MaximumEventAgeInSeconds"),
        ({"DestinationConfig": {"OnEither": {}}}, "DestinationConfig"),
        ({"DestinationConfig": {"OnSuccess": {"Arn": "x"}}}, "DestinationConfig.OnSuccess"),
        ({"Qualifier": "1"}, "Qualifier"),
    ],
)
def test_an_invalid_event_invoke_config_names_the_parameter(
    request_body: dict[str, Any], parameter: str
) -> None:
    for write in (put_event_invoke_config, update_event_invoke_config):
        with pytest.raises(InvalidParameter, match=parameter) as caught:
            write(None, request_body, namespace=NS, region=REGION)
        assert caught.value.parameter == parameter


def test_the_event_invoke_config_answer_is_one_botocore_parses() -> None:
    spec = {
        "async": {
            "maximumRetryAttempts": 1,
            "maximumEventAgeSeconds": 3600,
            "onFailure": {"kafka": {"topic": "dlq"}},
        }
    }
    answer = event_invoke_config(
        spec, namespace=NS, name="resize", region=REGION, last_modified=1764489600.25
    )
    result = parsed("GetFunctionEventInvokeConfig", answer)
    assert result["FunctionArn"] == f"{FN_ARN}:$LATEST"
    assert result["LastModified"].timestamp() == 1764489600.25
    assert result["MaximumRetryAttempts"] == 1 and result["MaximumEventAgeInSeconds"] == 3600
    assert result["DestinationConfig"] == {
        "OnSuccess": {},
        "OnFailure": {"Destination": "arn:kfaas:kafka:::topic/dlq"},
    }


def test_an_unset_async_is_not_configured_and_shows_defaults() -> None:
    assert not is_configured({}) and not is_configured({"async": {}})
    answer = event_invoke_config({}, namespace=NS, name="f", region=REGION, last_modified=0)
    assert answer["MaximumEventAgeInSeconds"] == DEFAULT_EVENT_AGE


# -- Reserved concurrency and account settings -------------------------------------------------


def test_reserved_concurrency_is_required_and_at_least_zero() -> None:
    assert reserved_concurrency({"ReservedConcurrentExecutions": 0}) == 0
    for body in ({}, {"ReservedConcurrentExecutions": -1}, {"ReservedConcurrentExecutions": 1.5}):
        with pytest.raises(InvalidParameter) as caught:
            reserved_concurrency(body)
        assert caught.value.parameter == "ReservedConcurrentExecutions"
    with pytest.raises(InvalidParameter, match="Other"):
        reserved_concurrency({"ReservedConcurrentExecutions": 1, "Other": 1})
    assert reserved_of({"concurrency": {"reserved": 5}}) == 5
    assert reserved_of({"concurrency": {}}) is None and reserved_of({}) is None


def test_account_settings_count_code_and_concurrency_the_functions_can_reach() -> None:
    specs: list[dict[str, Any]] = [
        {"code": {"zip": {"sha256": "0" * 64, "size": 1000}}},  # 100 x 1
        {
            "code": {"inline": {"app.py": "x = 1\n"}},
            "concurrency": {"perInstance": 4, "reserved": 10},
            "scaling": {"maxInstances": 5},
        },  # min(20, 10)
        {"code": {"image": "registry/app:1"}, "scaling": {"maxInstances": 2}},  # 2 x 1
    ]
    settings = account_settings(specs)
    assert settings["AccountUsage"]["FunctionCount"] == 3
    assert settings["AccountUsage"]["TotalCodeSize"] == 1000 + code_size(specs[1]) > 1000
    assert settings["AccountLimit"]["ConcurrentExecutions"] == 100 + 10 + 2
    assert settings["AccountLimit"]["UnreservedConcurrentExecutions"] == 102
    result = parsed("GetAccountSettings", settings)
    assert result["AccountLimit"]["CodeSizeZipped"] == 50 * 1024 * 1024
    assert result["AccountLimit"]["CodeSizeUnzipped"] == 250 * 1024 * 1024
    assert account_settings([])["AccountUsage"] == {"TotalCodeSize": 0, "FunctionCount": 0}
