"""boto3's Lambda client on a gateway serving the management API in-process.

``management_gateway`` (``tests/management_gateway.py``) serves ``gateway.app.create_app`` over
kfaas dev's folder stores in the test's ``tmp_path``; ``lambda_api`` is boto3 pointed at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from management_gateway import ManagementGateway, management_gateway_on


@pytest.fixture
def management_gateway(tmp_path: Path) -> Iterator[ManagementGateway]:
    with management_gateway_on(tmp_path) as gateway:
        yield gateway


@pytest.fixture
def lambda_api(management_gateway: ManagementGateway) -> Any:
    """boto3's Lambda client on the in-process management gateway."""
    return management_gateway.client
