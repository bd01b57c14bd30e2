"""boto3's Lambda client on a gateway serving the management API in-process.

``management_gateway`` (``tests/management_gateway.py``) serves ``gateway.app.create_app`` over
kfaas dev's folder stores in the test's ``tmp_path``; ``lambda_api`` is boto3 pointed at it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from devserver import make_lambda_client
from management_gateway import ManagementGateway, NoInstances, serve_in_thread

from kfaas.code_folder import DirectoryCodeStore
from kfaas.config import Settings
from kfaas.dir_store import DirectoryObjectStore
from kfaas.gateway.app import create_app
from kfaas.gateway.registry import FunctionRegistry


@pytest.fixture
def management_gateway(tmp_path: Path) -> Iterator[ManagementGateway]:
    objects = DirectoryObjectStore.open(tmp_path / "state")
    code_store = DirectoryCodeStore(tmp_path / "state" / "code")
    app = create_app(
        FunctionRegistry(default_namespace="default", region="us-east-1"),
        NoInstances(),
        Settings(),
        objects=objects,
        code_store=code_store,
    )
    served = serve_in_thread(app)
    try:
        url, loop = next(served)
        yield ManagementGateway(url, make_lambda_client(url), objects, code_store, loop, app)
    finally:
        served.close()
        objects.close()


@pytest.fixture
def lambda_api(management_gateway: ManagementGateway) -> Any:
    """boto3's Lambda client on the in-process management gateway."""
    return management_gateway.client
