"""A ``kfaas dev`` server over tests/functions for the whole session, and boto3 pointed at it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config
from devserver import DevServer, dev_server

FUNCTIONS = Path(__file__).parent.parent / "functions"


@pytest.fixture(scope="session")
def dev() -> Iterator[DevServer]:
    # Async retries scaled from minutes to tens of milliseconds (DESIGN, "Configuration").
    with dev_server([FUNCTIONS], env={"KFAAS_ASYNC_RETRY_BASE_SECONDS": "0.05"}) as server:
        yield server


@pytest.fixture(scope="session")
def lambda_client(dev: DevServer) -> Any:
    return boto3.client(
        "lambda",
        endpoint_url=dev.url,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 0}, read_timeout=120),
    )
