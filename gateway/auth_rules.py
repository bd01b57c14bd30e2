"""Credentials and RBAC-shaped rules held in memory: ``kfaas dev --credentials FILE``.

The file lets the cluster's behaviour be tried on one machine::

    credentials:
      - {accessKeyId: AKIDALICE, secretAccessKey: alice-secret, user: alice, groups: [team-a]}
    rules:
      - {groups: [team-a], namespaces: [team-a], verbs: [invoke, get, list]}
      - {users: [bob], namespaces: ["*"], verbs: ["*"]}

A rule grants its verbs in its namespaces to its users and groups, as a RoleBinding to a Role on
``functions.kfaas.dev`` would; ``*`` means every namespace or every verb; anything not granted is
refused. ``StaticCredentials`` is also the store the cluster gateway fills from its Secrets.
"""

from __future__ import annotations

import hmac
import logging
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from .auth import INTERNAL_GROUP, VERBS, Auth, Credential, Principal

log = logging.getLogger("kfaas.gateway.auth")
ACCESS_KEY_PATTERN = r"^[A-Za-z0-9._+=@-]{1,128}$"


class CredentialsFileError(ValueError):
    """The credentials file cannot be used; the message names the file and the field."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class CredentialEntry(_Model):
    access_key_id: str = Field(alias="accessKeyId", pattern=ACCESS_KEY_PATTERN)
    secret_access_key: str = Field(alias="secretAccessKey", min_length=1, repr=False)
    user: str = Field(min_length=1, max_length=256)
    groups: list[str] = Field(default_factory=list, max_length=64)


class Rule(_Model):
    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    namespaces: list[str] = Field(min_length=1)
    verbs: list[str] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> Rule:
        if not self.users and not self.groups:
            raise ValueError("a rule needs users or groups")
        unknown = [verb for verb in self.verbs if verb != "*" and verb not in VERBS]
        if unknown:
            raise ValueError(f"unknown verbs {unknown}: use {', '.join(VERBS)} or *")
        return self

    def grants(self, principal: Principal, verb: str, namespace: str) -> bool:
        return (
            (principal.user in self.users or any(g in self.groups for g in principal.groups))
            and ("*" in self.namespaces or namespace in self.namespaces)
            and ("*" in self.verbs or verb in self.verbs)
        )


class CredentialsFile(_Model):
    credentials: list[CredentialEntry] = Field(default_factory=list)
    rules: list[Rule] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_keys(self) -> CredentialsFile:
        seen: set[str] = set()
        for entry in self.credentials:
            if entry.access_key_id in seen:
                raise ValueError(f"accessKeyId {entry.access_key_id!r} appears twice")
            seen.add(entry.access_key_id)
        return self


def parse_credentials(document: Any, source: str) -> CredentialsFile:
    try:
        return CredentialsFile.model_validate(document if document is not None else {})
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}"
            for error in exc.errors()
        )
        raise CredentialsFileError(f"{source}: {problems}") from None


def load_credentials_file(path: str | Path) -> CredentialsFile:
    try:
        document = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise CredentialsFileError(f"{path}: cannot read: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CredentialsFileError(f"{path}: not YAML: {exc}") from None
    return parse_credentials(document, str(path))


class StaticCredentials:
    """Access keys (and internal bearer tokens) in memory; replaced whole when they change."""

    def __init__(
        self, credentials: Iterable[Credential] = (), tokens: Mapping[str, Principal] = {}
    ) -> None:
        self._by_key: dict[str, Credential] = {}
        self._tokens = dict(tokens)
        self.replace(credentials)

    @classmethod
    def from_file(cls, document: CredentialsFile) -> StaticCredentials:
        return cls(
            Credential(
                entry.access_key_id,
                entry.secret_access_key,
                Principal(entry.user, tuple(entry.groups)),
            )
            for entry in document.credentials
        )

    def replace(self, credentials: Iterable[Credential]) -> None:
        """Hold exactly these; an access key id given twice is ambiguous and refused."""
        by_key: dict[str, Credential] = {}
        twice: set[str] = set()
        for credential in credentials:
            if credential.access_key_id in by_key:
                twice.add(credential.access_key_id)
            by_key[credential.access_key_id] = credential
        for key in sorted(twice):
            log.warning("access key id %s is defined more than once; refusing it", key)
            del by_key[key]
        self._by_key = by_key

    def add_token(self, token: str, principal: Principal) -> None:
        self._tokens[token] = principal

    def credential(self, access_key_id: str) -> Credential | None:
        return self._by_key.get(access_key_id)

    async def token(self, token: str) -> Principal | None:
        for known, principal in self._tokens.items():
            if hmac.compare_digest(known.encode(), token.encode()):
                return principal
        return None

    def __len__(self) -> int:
        return len(self._by_key)


class RuleAuthorizer:
    """Allows exactly what one of the rules grants; the internal group may invoke anything."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        internal = Rule(groups=[INTERNAL_GROUP], namespaces=["*"], verbs=["invoke"])
        self.rules = [*rules, internal]

    async def allowed(
        self,
        principal: Principal,
        verb: str,
        namespace: str,
        name: str | None,
        *,
        plural: str = "functions",
    ) -> bool:
        # kfaas dev's rules grant verbs per namespace, on every kind alike.
        return any(rule.grants(principal, verb, namespace) for rule in self.rules)


def dev_auth(mode: str, document: CredentialsFile | None) -> tuple[Auth, str | None]:
    """The gateway auth of ``kfaas dev``, and the bearer token its own pollers present.

    The token is made afresh at each start and never printed: the in-process pollers hold it.
    """
    if mode == "none":
        return Auth("none"), None
    store = StaticCredentials.from_file(document or CredentialsFile())
    token = secrets.token_urlsafe(32)
    store.add_token(token, Principal("system:kfaas:dev-pollers", (INTERNAL_GROUP,)))
    rules = document.rules if document is not None else []
    return Auth(mode, store, RuleAuthorizer(rules)), token
