"""Function names: every spelling boto3 and the CLI use resolves to the same function."""

from __future__ import annotations

import pytest

from kfaas.names import (
    FunctionRef,
    InvalidFunctionName,
    QualifierMismatch,
    function_arn,
    parse_function_name,
)


@pytest.mark.parametrize(
    ("raw", "qualifier", "expected"),
    [
        ("thumbnail", None, FunctionRef("default", "thumbnail", None)),
        ("thumbnail:$LATEST", None, FunctionRef("default", "thumbnail", "$LATEST")),
        ("thumbnail", "$LATEST", FunctionRef("default", "thumbnail", "$LATEST")),
        ("thumbnail", "", FunctionRef("default", "thumbnail", None)),
        ("media/thumbnail", None, FunctionRef("media", "thumbnail", None)),
        ("media/thumbnail:live", "live", FunctionRef("media", "thumbnail", "live")),
        (
            "arn:aws:lambda:us-east-1:media:function:thumbnail",
            None,
            FunctionRef("media", "thumbnail", None),
        ),
        (
            "arn:aws:lambda:eu-west-1:123456789012:function:fn:7",
            None,
            FunctionRef("123456789012", "fn", "7"),
        ),
        ("media:function:thumbnail", None, FunctionRef("media", "thumbnail", None)),
        ("media:function:thumbnail:$LATEST", None, FunctionRef("media", "thumbnail", "$LATEST")),
        ("My_Function-1", None, FunctionRef("default", "My_Function-1", None)),
    ],
)
def test_accepted_spellings(raw: str, qualifier: str | None, expected: FunctionRef) -> None:
    assert parse_function_name(raw, "default", qualifier) == expected


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "a/b/c",
        "Media/fn",
        "fn:",
        "fn:a:b",
        "a" * 65,
        "arn:aws:s3:::bucket",
        "arn:aws:lambda:us-east-1:media:layer:x",
        "fn with space",
    ],
)
def test_malformed_names_are_refused(raw: str) -> None:
    with pytest.raises(InvalidFunctionName):
        parse_function_name(raw, "default")


def test_a_contradicting_qualifier_is_lambdas_error() -> None:
    with pytest.raises(QualifierMismatch) as caught:
        parse_function_name("fn:1", "default", "2")
    assert str(caught.value) == (
        "The derived qualifier from the function name does not match the specified qualifier."
    )


def test_ref_key_is_namespace_slash_name() -> None:
    assert parse_function_name("media/fn", "default").key == "media/fn"


@pytest.mark.parametrize(
    ("args", "arn"),
    [
        (("media", "fn"), "arn:aws:lambda:us-east-1:media:function:fn"),
        (("media", "fn", "eu-west-1"), "arn:aws:lambda:eu-west-1:media:function:fn"),
        (
            ("media", "fn", "us-east-1", "$LATEST"),
            "arn:aws:lambda:us-east-1:media:function:fn:$LATEST",
        ),
    ],
)
def test_arns(args: tuple[str, ...], arn: str) -> None:
    assert function_arn(*args) == arn
    # What we hand out, we accept back.
    ref = parse_function_name(arn, "other")
    assert (ref.namespace, ref.name) == args[:2]
