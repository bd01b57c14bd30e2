"""Lambda tags in the `kfaas.dev/tags` annotation: one encoding, Lambda's limits, ListTags."""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.parsers import create_parser

from kfaas.lambda_shapes import InvalidParameter
from kfaas.lambda_tags import MalformedTags, decode_tags, encode_tags, tag, untag


def test_tags_round_trip_through_the_annotation_with_any_letter() -> None:
    tags = {"team": "media", "cost centre/ü": "42 x", "a:b@c=d+e-f_g.h": ""}
    encoded = encode_tags(tags)
    assert decode_tags(encoded) == tags
    assert encode_tags(dict(reversed(list(tags.items())))) == encoded


def test_no_annotation_means_no_tags() -> None:
    assert decode_tags(None) == {} and decode_tags("") == {}


@pytest.mark.parametrize("value", ["{", "[]", '{"a": 1}', '"text"', "null"])
def test_a_hand_edited_annotation_is_reported(value: str) -> None:
    with pytest.raises(MalformedTags, match=r"kfaas\.dev/tags"):
        decode_tags(value)


@pytest.mark.parametrize(
    "tags",
    [
        {"": "v"},
        {"k" * 129: "v"},
        {"k": "v" * 257},
        {"new\nline": "v"},
        {"k": "semi;colon"},
        {"aws:reserved": "v"},
        {f"k{n}": "v" for n in range(51)},
    ],
)
def test_tags_lambda_refuses_are_refused_naming_tags(tags: dict[str, str]) -> None:
    with pytest.raises(InvalidParameter) as refused:
        encode_tags(tags)
    assert refused.value.parameter == "Tags"


def test_tag_merges_and_untag_removes() -> None:
    current = {"team": "media", "stage": "dev"}
    assert tag(current, {"stage": "prod", "owner": "ana"}) == {
        "team": "media",
        "stage": "prod",
        "owner": "ana",
    }
    assert untag(current, ["stage", "absent"]) == {"team": "media"}


def test_tagging_past_fifty_is_refused() -> None:
    current = {f"k{n}": "v" for n in range(50)}
    assert tag(current, {"k0": "changed"})["k0"] == "changed"
    with pytest.raises(InvalidParameter, match="at most 50"):
        tag(current, {"one-more": "v"})


def test_list_tags_answer_is_what_boto3_returns() -> None:
    tags = decode_tags(encode_tags({"team": "media", "ü": "ß"}))
    response = {"status_code": 200, "headers": {}, "body": json.dumps({"Tags": tags}).encode()}
    model = botocore.session.get_session().get_service_model("lambda")
    shape = model.operation_model("ListTags").output_shape
    parsed: dict[str, Any] = create_parser("rest-json").parse(response, shape)
    assert parsed["Tags"] == {"team": "media", "ü": "ß"}
