"""ListFunctions-style paging: MaxItems, NextMarker round trips, and markers Lambda would refuse.

The listing's JSON is also sent through botocore's parser for ListFunctions, so `NextMarker` is
where boto3's paginator looks for it.
"""

from __future__ import annotations

import json
from typing import Any

import botocore.session
import pytest
from botocore.parsers import create_parser

from kfaas.lambda_shapes import InvalidParameter
from kfaas.pagination import (
    PAGE_CAP,
    decode_marker,
    encode_marker,
    paginate,
    parse_max_items,
)

KEY = b"gateway-key"
NAMES = [("team-b", "zeta"), ("team-a", "beta"), ("team-a", "alpha"), ("team-b", "eta")]


def key_of(item: tuple[str, str]) -> tuple[str | int, ...]:
    return item


def all_pages(items: list[tuple[str, str]], max_items: int) -> list[list[tuple[str, str]]]:
    pages, marker = [], None
    while True:
        page = paginate(
            items, key_of, marker=marker, max_items=max_items, scope="functions", key=KEY
        )
        pages.append(page.items)
        if page.next_marker is None:
            return pages
        marker = page.next_marker


def test_pages_cover_every_item_once_in_order() -> None:
    pages = all_pages(NAMES, 3)
    assert pages == [
        [("team-a", "alpha"), ("team-a", "beta"), ("team-b", "eta")],
        [("team-b", "zeta")],
    ]


def test_a_page_exactly_full_has_no_next_marker() -> None:
    assert all_pages(NAMES, 4) == [sorted(NAMES)]
    assert all_pages([], 10) == [[]]


def test_items_created_or_deleted_between_pages_are_neither_repeated_nor_skipped() -> None:
    first = paginate(NAMES, key_of, marker=None, max_items=2, scope="functions", key=KEY)
    changed = [n for n in NAMES if n != ("team-a", "alpha")] + [("team-a", "gamma")]
    second = paginate(
        changed, key_of, marker=first.next_marker, max_items=10, scope="functions", key=KEY
    )
    assert first.items == [("team-a", "alpha"), ("team-a", "beta")]
    assert second.items == [("team-a", "gamma"), ("team-b", "eta"), ("team-b", "zeta")]


def test_numbers_sort_as_numbers() -> None:
    versions = [10, 9, 2, 1]
    page = paginate(versions, lambda v: (v,), marker=None, max_items=2, scope="v", key=KEY)
    assert page.items == [1, 2]
    rest = paginate(
        versions, lambda v: (v,), marker=page.next_marker, max_items=5, scope="v", key=KEY
    )
    assert rest.items == [9, 10]


def test_next_marker_is_what_boto3_reads() -> None:
    page = paginate(NAMES, key_of, marker=None, max_items=1, scope="functions", key=KEY)
    body: dict[str, Any] = {"Functions": [], "NextMarker": page.next_marker}
    response = {"status_code": 200, "headers": {}, "body": json.dumps(body).encode()}
    output = botocore.session.get_session().get_service_model("lambda")
    shape = output.operation_model("ListFunctions").output_shape
    parsed: dict[str, Any] = create_parser("rest-json").parse(response, shape)
    assert parsed["NextMarker"] == page.next_marker
    assert decode_marker(parsed["NextMarker"], scope="functions", key=KEY) == ("team-a", "alpha")


def good_marker() -> str:
    return encode_marker(("team-a", "beta"), scope="functions", key=KEY)


@pytest.mark.parametrize(
    "marker",
    [
        "garbage",
        "a.b.c",
        "!!!.???",
        good_marker() + "x",
        good_marker().replace(".", ".A", 1),
        encode_marker(("team-a", "beta"), scope="functions", key=b"another installation"),
        encode_marker(("team-a", "beta"), scope="versions:media/thumbnail", key=KEY),
        "x" * 5000,
    ],
)
def test_forged_garbled_or_borrowed_markers_are_refused_naming_marker(marker: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        paginate(NAMES, key_of, marker=marker, max_items=5, scope="functions", key=KEY)
    assert refused.value.parameter == "Marker"
    assert "Marker" in str(refused.value)


def test_a_signed_marker_of_the_wrong_shape_is_refused() -> None:
    numeric = encode_marker((3,), scope="functions", key=KEY)
    with pytest.raises(InvalidParameter, match="Marker"):
        paginate(NAMES, key_of, marker=numeric, max_items=5, scope="functions", key=KEY)


@pytest.mark.parametrize(
    ("raw", "expected"), [(None, PAGE_CAP), ("1", 1), ("50", 50), ("51", 50), ("10000", 50)]
)
def test_max_items_in_range_served_up_to_lambdas_cap(raw: str | None, expected: int) -> None:
    assert parse_max_items(raw) == expected
    assert parse_max_items("10000", cap=10000) == 10000


@pytest.mark.parametrize("raw", ["0", "10001", "-1", "ten", "", "1.5"])
def test_max_items_out_of_range_is_refused_naming_it(raw: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        parse_max_items(raw)
    assert refused.value.parameter == "MaxItems"
