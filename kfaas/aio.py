"""Running the long-lived servers: uvloop when it is installed, asyncio's own loop otherwise.

uvloop makes aiohttp's server and client markedly faster on the invoke path; nothing depends on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    return uvloop.run(main)
