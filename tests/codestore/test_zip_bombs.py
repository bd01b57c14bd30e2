"""Size limits: Lambda's 50 MB zipped and 250 MB unzipped, by declared and by actual sizes."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import pytest
from codestore.zips import lie_about_size, make_zip, zeros_zip

from kfaas.code_archives import (
    LAMBDA_LIMITS,
    MAX_UNZIPPED_BYTES,
    MAX_ZIPPED_BYTES,
    ArchiveLimits,
    ArchiveTooLarge,
    InvalidArchive,
    UnzippedTooLarge,
    copy_bounded,
    digest_chunks,
    extract_archive,
    inspect_archive,
    verify_archive,
)

SMALL = ArchiveLimits(zipped_bytes=1 << 20, unzipped_bytes=100_000, entries=10)


def on_disk(folder: Path) -> int:
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def test_lambda_limits_are_50_and_250_mib() -> None:
    assert (MAX_ZIPPED_BYTES, MAX_UNZIPPED_BYTES) == (52_428_800, 262_144_000)
    assert LAMBDA_LIMITS.zipped_bytes == MAX_ZIPPED_BYTES


def test_honest_bomb_over_250_mib_is_refused_before_unpacking(tmp_path: Path) -> None:
    bomb = zeros_zip("zeros", MAX_UNZIPPED_BYTES + 1)
    assert len(bomb) < 1 << 20  # a small zip: about 1,000 to 1
    with pytest.raises(UnzippedTooLarge, match="262144000 bytes; the zip declares 262144001"):
        inspect_archive(bomb)
    with pytest.raises(UnzippedTooLarge):
        extract_archive(bomb, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_unzipped_exactly_at_the_limit_is_taken_one_byte_over_is_not(tmp_path: Path) -> None:
    at_limit = make_zip([("a", bytes(60_000)), ("b", bytes(40_000))])
    assert extract_archive(at_limit, tmp_path, SMALL).unzipped_size == 100_000
    assert on_disk(tmp_path) == 100_000
    over = make_zip([("a", bytes(60_000)), ("b", bytes(40_001))])
    with pytest.raises(UnzippedTooLarge, match="at most 100000 bytes; the zip declares 100001"):
        inspect_archive(over, SMALL)


def test_zipped_exactly_at_the_limit_is_taken_one_byte_over_is_not() -> None:
    data = make_zip([("app.py", "def handler(event, context): ...\n")])
    exact = ArchiveLimits(zipped_bytes=len(data))
    assert inspect_archive(data, exact).zipped_size == len(data)
    with pytest.raises(ArchiveTooLarge, match=f"{len(data)} bytes, over the limit of"):
        inspect_archive(data, ArchiveLimits(zipped_bytes=len(data) - 1))


def test_a_zip_over_50_mib_is_refused_before_it_is_parsed() -> None:
    with pytest.raises(ArchiveTooLarge, match="52428801 bytes"):
        inspect_archive(io.BytesIO(bytes(MAX_ZIPPED_BYTES + 1)))


def test_an_upload_stream_is_cut_off_as_it_passes_the_limit() -> None:
    sent: list[int] = []

    def chunks() -> Iterator[bytes]:
        for index in range(100):
            sent.append(index)
            yield bytes(400)

    assert digest_chunks(iter([bytes(400)] * 3), limit=1200)[1] == 1200
    with pytest.raises(ArchiveTooLarge, match="over 1200 bytes"):
        digest_chunks(chunks(), limit=1200)
    assert len(sent) == 4  # stopped at the first chunk past the limit, not at the end


def test_too_many_entries() -> None:
    data = make_zip([(f"f{index}", b"") for index in range(11)])
    with pytest.raises(UnzippedTooLarge, match="11 entries, over the limit of 10"):
        inspect_archive(data, SMALL)


def test_a_bomb_declaring_small_sizes_stops_at_what_it_declared(tmp_path: Path) -> None:
    # The headers claim 1,000 bytes; the data inflates to 2 MB, far over the 100,000 limit.
    liar = lie_about_size(zeros_zip("bomb", 2_000_000), "bomb", 1_000)
    assert inspect_archive(liar, SMALL).unzipped_size == 1_000  # the lie passes a header check
    with pytest.raises(InvalidArchive):
        extract_archive(liar, tmp_path, SMALL)
    assert list(tmp_path.iterdir()) == []


def test_entries_that_all_lie_are_refused_at_the_first_and_leave_nothing(tmp_path: Path) -> None:
    data = make_zip([(f"bomb{index}", bytes(500_000)) for index in range(4)])
    for index in range(4):
        data = lie_about_size(data, f"bomb{index}", 20_000)
    assert inspect_archive(data, SMALL).unzipped_size == 80_000
    with pytest.raises(InvalidArchive, match="bomb0"):
        extract_archive(data, tmp_path, SMALL)
    assert on_disk(tmp_path) == 0


def test_an_entry_holding_less_than_it_declares_is_corrupt(tmp_path: Path) -> None:
    data = lie_about_size(make_zip([("short", bytes(1_000))]), "short", 2_000)
    with pytest.raises(InvalidArchive, match="short"):
        extract_archive(data, tmp_path, SMALL)
    assert list(tmp_path.iterdir()) == []


class Endless(io.RawIOBase):
    """A decompressor that ignores the headers: zeros for ever, counting what was asked."""

    def __init__(self) -> None:
        self.given = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        buffer[:] = bytes(len(buffer))
        self.given += len(buffer)
        return len(buffer)


def test_the_copy_stops_at_the_budget_whatever_the_source_says() -> None:
    source, target = Endless(), io.BytesIO()
    with pytest.raises(UnzippedTooLarge, match="entry 'x': unzips to more than 100000 bytes"):
        copy_bounded(source, target, budget=100_000, what="entry 'x'")  # type: ignore[arg-type]
    assert target.tell() <= 100_000
    assert source.given <= 100_001 + 256 * 1024


def test_the_copy_takes_exactly_the_budget() -> None:
    target = io.BytesIO()
    assert copy_bounded(io.BytesIO(bytes(100)), target, budget=100, what="x") == 100
    assert target.getvalue() == bytes(100)
    assert copy_bounded(io.BytesIO(bytes(100)), None, budget=100, what="x") == 100


def test_an_upload_is_verified_by_unzipping_without_writing() -> None:
    honest = make_zip([("a", bytes(60_000)), ("b", bytes(40_000))])
    assert verify_archive(honest, SMALL) == inspect_archive(honest, SMALL)
    liar = lie_about_size(zeros_zip("bomb", 2_000_000), "bomb", 1_000)
    with pytest.raises(InvalidArchive, match="bomb"):
        verify_archive(liar, SMALL)
    short = lie_about_size(make_zip([("short", bytes(1_000))]), "short", 2_000)
    with pytest.raises(InvalidArchive, match="'short' declares 2000 bytes and holds 1000"):
        verify_archive(short, SMALL)
