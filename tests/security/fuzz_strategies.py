"""Hypothesis strategies for hostile HTTP pieces, and the pool of values the fuzz suite mixes.

Why a pool: hypothesis costs about a millisecond per example (draw bookkeeping, health checks),
which would make the 100,000 requests of the fuzz suite a matter of minutes of generation alone.
So hypothesis draws a few thousand values per kind of piece (header values, path segments, JSON
documents, raw bytes...) with its edge-case bias — empty strings, surrogates-free astral
characters, control characters, huge and tiny numbers, deep-ish nesting — and a seeded generator
(``fuzz_requests``) combines them with hand-written hostile constants into raw requests. Every run
uses a fixed hypothesis seed and a fixed mixer seed (``KFAAS_FUZZ_SEED`` overrides both), so a
failure is reproduced by the same command, and the report prints the exact bytes that failed.
"""

from __future__ import annotations

import json
import os
import string
from typing import Any

from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis import strategies as st

SEED = int(os.environ.get("KFAAS_FUZZ_SEED", "20261129"))

TCHAR = string.ascii_letters + string.digits + "!#$%&'*+-.^_`|~"

json_values: st.SearchStrategy[Any] = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(2**80), max_value=2**80)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5)
    ),
    max_leaves=25,
)

# The pieces a request is made of. Text is encoded by the mixer (UTF-8, so non-Latin-1 characters
# become bytes >= 0x80 on the wire); `bytes` kinds go out as they are, CR/LF/NUL included.
PIECES: dict[str, st.SearchStrategy[Any]] = {
    "token": st.text(alphabet=TCHAR, min_size=1, max_size=24),
    "text": st.text(max_size=40),
    "latin1": st.text(alphabet=st.characters(max_codepoint=0xFF), max_size=40),
    "control": st.text(alphabet=st.characters(max_codepoint=0x20), max_size=6),
    "bytes": st.binary(max_size=80),
    "json": json_values,
    "ascii_json": st.booleans(),
    "segment": st.text(max_size=24) | st.sampled_from(["..", ".", "%2e%2e", "%2F", "%00", "~"]),
    "query_pair": st.tuples(st.text(max_size=12), st.text(max_size=12)),
    "number": st.integers() | st.sampled_from([0, -1, 2**31, 2**63, 10**30]),
}


def collect_pool(examples: int) -> dict[str, list[Any]]:
    """Draw ``examples`` values of each piece with hypothesis (generate phase only, no I/O)."""
    pool: dict[str, list[Any]] = {name: [] for name in PIECES}

    @seed(SEED)
    @settings(
        max_examples=examples,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(st.fixed_dictionaries(PIECES))
    def draw(values: dict[str, Any]) -> None:
        for name, value in values.items():
            pool[name].append(value)

    draw()
    pool["json_text"] = [
        json.dumps(value, ensure_ascii=ascii_only)
        for value, ascii_only in zip(pool["json"], pool["ascii_json"], strict=True)
    ]
    return pool
