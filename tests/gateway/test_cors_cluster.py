"""`spec.http.cors` against the real API server: the CRD refuses what the model refuses (ADR 029).

The same values as the model's tests (tests/gateway/test_cors.py), applied with
``kubectl apply --dry-run=server`` to a control plane holding the generated Function CRD: Lambda's
examples are accepted, and each refusal names the field, so a manifest `kfaas dev` refuses cannot
slip into a cluster.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from services.cluster import Cluster

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def crd(kwok_service: Cluster) -> Cluster:
    kwok_service.install_crds(ROOT / "crds" / "functions.kfaas.dev.yaml")
    return kwok_service


def function_doc(cors: dict[str, Any]) -> str:
    return yaml.safe_dump(
        {
            "apiVersion": "kfaas.dev/v1alpha1",
            "kind": "Function",
            "metadata": {"name": "web", "namespace": "default"},
            "spec": {
                "runtime": "python3.11",
                "handler": "app.handler",
                "code": {"image": "example/web:1"},
                "http": {"enabled": True, "cors": cors},
            },
        }
    )


def test_lambdas_examples_are_accepted(crd: Cluster) -> None:
    for cors in [
        {"allowOrigins": ["*"], "allowMethods": ["*"], "allowHeaders": ["*"], "maxAge": 86400},
        {
            "allowOrigins": ["https://www.example.com", "http://localhost:60905"],
            "allowMethods": ["GET", "POST", "DELETE"],
            "allowHeaders": ["Date", "Keep-Alive", "X-Custom-Header"],
            "exposeHeaders": ["X-Request-Total"],
            "allowCredentials": True,
        },
    ]:
        done = crd.kubectl("apply", "--dry-run=server", "-f", "-", input=function_doc(cors))
        assert done.returncode == 0, done.stderr


INVALID = [
    ({"allowOrigins": ["https://a.example/path"]}, "spec.http.cors.allowOrigins[0]"),
    ({"allowOrigins": ["a.example"]}, "spec.http.cors.allowOrigins[0]"),
    (
        {"allowOrigins": [f"https://s{n}.example" for n in range(101)]},
        "spec.http.cors.allowOrigins",
    ),
    ({"allowMethods": ["get"]}, "spec.http.cors.allowMethods[0]"),
    ({"allowMethods": ["GET"] * 7}, "spec.http.cors.allowMethods"),
    ({"allowHeaders": ["x custom"]}, "spec.http.cors.allowHeaders[0]"),
    ({"exposeHeaders": ["x:custom"]}, "spec.http.cors.exposeHeaders[0]"),
    ({"maxAge": 86401}, "spec.http.cors.maxAge"),
    (
        {"allowOrigins": ["*"], "allowCredentials": True},
        "allowCredentials true needs allowOrigins to name origins, not *",
    ),
]


@pytest.mark.parametrize(("cors", "says"), INVALID, ids=[str(i) for i in range(len(INVALID))])
def test_the_apiserver_refuses_what_lambda_refuses(
    crd: Cluster, cors: dict[str, Any], says: str
) -> None:
    done = crd.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=function_doc(cors), check=False
    )
    assert done.returncode != 0
    assert "spec.http.cors" in done.stderr and says in done.stderr, done.stderr
