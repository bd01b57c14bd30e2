"""A ``kfaas dev`` server over tests/functions for the whole session, and boto3 pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devserver import DevServer, dev_server, make_lambda_client

FUNCTIONS = Path(__file__).parent.parent / "functions"


@pytest.fixture(scope="session")
def dev() -> Iterator[DevServer]:
    # Async retries scaled from minutes to tens of milliseconds (DESIGN, "Configuration").
    with dev_server([FUNCTIONS], env={"KFAAS_ASYNC_RETRY_BASE_SECONDS": "0.05"}) as server:
        yield server


@pytest.fixture(scope="session")
def lambda_client(dev: DevServer) -> Any:
    return make_lambda_client(dev.url)
