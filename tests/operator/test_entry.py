"""``kfaas operator``'s start: it refuses to idle without its peering object (issue 10, point 7).

The process against the real control plane is in test_on_cluster.py; here the decision alone.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from kfaas.kube_clients import KubeError
from kfaas.operator.config import OperatorOptions
from kfaas.operator.main import PeeringMissing, require_peering


class Peerings:
    """Just enough of KubeClient: answers reads of the peering object from a script."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.reads: list[tuple[str, str | None, str]] = []

    async def find(self, api_version: str, plural: str, namespace: str | None, name: str) -> Any:
        self.reads.append((plural, namespace, name))
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def check(client: Peerings, options: OperatorOptions) -> None:
    asyncio.run(require_peering(client, options))  # type: ignore[arg-type]


def test_a_missing_peering_object_stops_the_start_naming_it() -> None:
    client = Peerings(None)
    with pytest.raises(PeeringMissing, match="no ClusterKopfPeering 'prod': "):
        check(client, OperatorOptions(peering_name="prod"))
    assert client.reads == [("clusterkopfpeerings", None, "prod")]
    client = Peerings(None)
    with pytest.raises(PeeringMissing, match="no KopfPeering 'prod' in namespace 'team'"):
        check(client, OperatorOptions(peering_name="prod", namespace="team"))
    assert client.reads == [("kopfpeerings", "team", "prod")]


def test_the_peering_object_found_or_standalone_lets_it_start() -> None:
    check(Peerings({"metadata": {"name": "kfaas"}}), OperatorOptions())
    standalone = Peerings()
    check(standalone, OperatorOptions(standalone=True))
    assert standalone.reads == []


def test_no_answer_is_asked_again_and_a_refusal_is_not() -> None:
    client = Peerings(KubeError(0, "Unreachable", "connection refused"), {"status": {}})
    check(client, OperatorOptions())
    assert len(client.reads) == 2
    refused = Peerings(KubeError(403, "Forbidden", "cannot get clusterkopfpeerings"))
    with pytest.raises(KubeError, match="403 Forbidden"):
        check(refused, OperatorOptions())
    assert len(refused.reads) == 1
