"""The pure parts of Invoke API auth: credential Secrets, rules, the key store."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from kfaas.gateway.auth import Credential, Principal
from kfaas.gateway.auth_clients import credential_from_secret
from kfaas.gateway.auth_rules import RuleAuthorizer, StaticCredentials, parse_credentials


def secret(**data: str) -> dict[str, Any]:
    encoded = {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}
    return {"metadata": {"namespace": "kfaas-system", "name": "k"}, "data": encoded}


def test_a_labelled_secret_becomes_a_credential_with_its_groups() -> None:
    found = credential_from_secret(
        secret(accessKeyId="AKID1", secretAccessKey="sh-h-h", user="alice", groups=" a, b ,,")
    )
    assert found == Credential("AKID1", "sh-h-h", Principal("alice", ("a", "b")))
    assert "sh-h-h" not in repr(found)  # the secret never reaches a log line through repr


@pytest.mark.parametrize(
    "body",
    [
        secret(accessKeyId="AKID1", user="alice"),
        secret(accessKeyId="AKID1", secretAccessKey="s", user=""),
        secret(accessKeyId="AK/ID", secretAccessKey="s", user="alice"),
        secret(accessKeyId="AKID1", secretAccessKey="s", user="system:admin"),
        secret(accessKeyId="AKID1", secretAccessKey="s", user="eve", groups="team,system:masters"),
        {"metadata": {}, "data": {"accessKeyId": "%%%", "secretAccessKey": "", "user": ""}},
        {"metadata": {}, "data": None},
        {"metadata": {}},
    ],
)
def test_unusable_or_privileged_secrets_are_ignored(body: dict[str, Any]) -> None:
    assert credential_from_secret(body) is None


def test_an_access_key_defined_twice_is_refused_for_both() -> None:
    store = StaticCredentials(
        [
            Credential("AKID1", "a", Principal("alice")),
            Credential("AKID1", "b", Principal("mallory")),
            Credential("AKID2", "c", Principal("bob")),
        ]
    )
    assert store.credential("AKID1") is None
    assert store.credential("AKID2") is not None and len(store) == 1


async def test_rules_grant_exactly_their_verbs_namespaces_users_and_groups() -> None:
    document = parse_credentials(
        {
            "rules": [
                {"groups": ["team-a"], "namespaces": ["team-a"], "verbs": ["invoke"]},
                {"users": ["root"], "namespaces": ["*"], "verbs": ["*"]},
            ]
        },
        "test",
    )
    rules = RuleAuthorizer(document.rules)
    member = Principal("alice", ("team-a",))
    assert await rules.allowed(member, "invoke", "team-a", "f")
    assert not await rules.allowed(member, "get", "team-a", "f")
    assert not await rules.allowed(member, "invoke", "team-b", "f")
    assert not await rules.allowed(Principal("team-a"), "invoke", "team-a", "f")  # a user, no group
    assert await rules.allowed(Principal("root"), "delete", "anything", None)
    # kfaas dev's own pollers may invoke, and only invoke.
    internal = Principal("system:kfaas:dev-pollers", ("system:kfaas:internal",))
    assert await rules.allowed(internal, "invoke", "x", "y")
    assert not await rules.allowed(internal, "get", "x", "y")
