"""Versions and aliases: names, Lambda's rules refused naming the parameter, the weighted choice,
publish's "nothing changed" digest, and GetAlias' answer as boto3 parses it."""

from __future__ import annotations

import json
import random
from typing import Any

import botocore.session
import pytest
from botocore.parsers import create_parser

from kfaas.lambda_shapes import InvalidParameter, ObjectFacts, revision_id
from kfaas.lambda_versions import (
    alias_configuration,
    alias_name,
    check_routing,
    choose_version,
    config_sha256,
    next_version,
    parse_version,
    version_name,
)

MODEL = botocore.session.get_session().get_service_model("lambda")
FACTS = ObjectFacts(uid="u-1", generation=3, created="2026-11-30T06:00:00Z")


def test_object_names() -> None:
    assert version_name("thumbnail", 3) == "thumbnail.3"
    assert alias_name("thumbnail", "live") == "thumbnail.live"


@pytest.mark.parametrize("alias", ["123", "Live", "under_score", "-x", "x-", "", "a" * 64, "a.b"])
def test_alias_names_a_kubernetes_name_cannot_hold_are_refused_naming_name(alias: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        alias_name("thumbnail", alias)
    assert refused.value.parameter == "Name"


def test_version_numbers() -> None:
    assert parse_version("12") == 12
    for text in ("0", "01", "$LATEST", "1.5", "-1", ""):
        with pytest.raises(InvalidParameter, match="FunctionVersion"):
            parse_version(text)
    assert next_version(None) == 1
    assert next_version("7") == 8
    with pytest.raises(ValueError, match="last-version"):
        next_version("seven")


@pytest.mark.parametrize(
    ("primary", "weights"),
    [("1", {}), ("2", {"1": 0.1}), ("2", {"3": 0.0}), ("2", {"3": 1.0}), ("$LATEST", {})],
)
def test_routing_lambda_accepts(primary: str, weights: dict[str, float]) -> None:
    check_routing(primary, weights)


@pytest.mark.parametrize(
    ("primary", "weights"),
    [
        ("$LATEST", {"1": 0.1}),
        ("2", {"1": 0.1, "3": 0.1}),
        ("2", {"2": 0.5}),
        ("2", {"$LATEST": 0.5}),
        ("2", {"1": 1.5}),
        ("2", {"1": -0.1}),
    ],
)
def test_routing_lambda_refuses_is_refused_naming_routing_config(
    primary: str, weights: dict[str, float]
) -> None:
    with pytest.raises(InvalidParameter) as refused:
        check_routing(primary, weights)
    assert refused.value.parameter == "RoutingConfig"


def test_choice_follows_the_weight_at_its_edges() -> None:
    assert choose_version("1", {"2": 0.1}, 0.0) == "2"
    assert choose_version("1", {"2": 0.1}, 0.1) == "1"
    assert choose_version("1", {"2": 0.0}, 0.0) == "1"
    assert choose_version("1", {"2": 1.0}, 0.999999) == "2"
    assert choose_version("1", {}, 0.5) == "1"


def test_a_canary_split_holds_over_two_thousand_invocations() -> None:
    draws = random.Random(11)
    chosen = [choose_version("1", {"2": 0.1}, draws.random()) for _ in range(2000)]
    canary = chosen.count("2")
    # 10 % of 2000 is 200 with a standard deviation of about 13.4: four of them either side.
    assert 146 <= canary <= 254


def test_config_digest_changes_exactly_when_the_configuration_does() -> None:
    spec = {"runtime": "python3.12", "handler": "app.handler", "memoryMB": 128}
    same = {"memoryMB": 128, "handler": "app.handler", "runtime": "python3.12"}
    assert config_sha256(spec) == config_sha256(same)
    assert config_sha256(spec) != config_sha256({**spec, "memoryMB": 256})
    assert config_sha256(spec) != config_sha256(spec, description="v2")


def parsed(operation: str, body: object) -> dict[str, Any]:
    response = {"status_code": 200, "headers": {}, "body": json.dumps(body).encode()}
    shape = MODEL.operation_model(operation).output_shape
    result: dict[str, Any] = create_parser("rest-json").parse(response, shape)
    return result


def test_get_alias_answer_is_what_boto3_returns() -> None:
    body = alias_configuration(
        "media", "thumbnail", "live", primary="1", weights={"2": 0.1}, facts=FACTS,
        region="eu-west-1", description="canary",
    )  # fmt: skip
    answer = parsed("GetAlias", body)
    assert answer["AliasArn"] == "arn:aws:lambda:eu-west-1:media:function:thumbnail:live"
    assert answer["Name"] == "live" and answer["FunctionVersion"] == "1"
    assert answer["RoutingConfig"] == {"AdditionalVersionWeights": {"2": 0.1}}
    assert answer["RevisionId"] == revision_id("u-1", 3)
    assert answer["Description"] == "canary"
    assert set(body) <= set(MODEL.shape_for("AliasConfiguration").members)


def test_an_alias_without_weights_has_no_routing_config() -> None:
    body = alias_configuration(
        "media", "thumbnail", "live", primary="$LATEST", weights={}, facts=FACTS, region="r"
    )
    answer = parsed("ListAliases", {"Aliases": [body]})
    assert "RoutingConfig" not in answer["Aliases"][0]
