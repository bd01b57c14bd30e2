"""Invoke API auth in a cluster: access keys from labelled Secrets, TokenReview, RBAC.

``ClusterAuthenticator`` keeps the access keys of the Secrets labelled
``kfaas.dev/credentials: "true"`` in the platform namespace current through a watch (a new or
deleted Secret counts at once, no restart), and asks the apiserver (TokenReview) whose a
``Bearer`` token is. ``SubjectAccessReviews`` asks whether a user and its groups may perform a
verb on ``functions.kfaas.dev`` in a namespace. Both answers are cached for a few seconds
(``KFAAS_AUTH_CACHE_SECONDS``) in bounded caches, so a busy caller costs one review per window
and a flood of distinct tokens cannot grow memory; a bearer token that is not JWT-shaped is refused
without asking, and at most 16 reviews are in flight, so made-up tokens cannot multiply into
apiserver load. An apiserver that does not answer makes the check fail closed (500), never open.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import logging
import re
from typing import Any

from kfaas import aiokit
from kfaas.config import Settings
from kfaas.kube_clients import Informer, KubeClient, KubeError
from kfaas.manifests import API_GROUP

from .auth import Auth, Credential, Principal, TtlCache
from .auth_rules import ACCESS_KEY_PATTERN, StaticCredentials
from .errors import ServiceError

log = logging.getLogger("kfaas.gateway.auth")

CREDENTIALS_LABEL = f"{API_GROUP}/credentials"
CACHE_SIZE = 4096
# Reviews in flight at once per gateway: a flood of made-up tokens waits here instead of
# multiplying into apiserver load.
MAX_REVIEWS_IN_FLIGHT = 16
# A ServiceAccount token is a JWT: three base64url parts. Anything else is refused unasked.
_JWT = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
Body = dict[str, Any]
# Identities only Kubernetes itself hands out: a credential Secret may not claim them.
RESERVED_PREFIX = "system:"


class Reviews:
    """Asks the apiserver a review (TokenReview, SubjectAccessReview), at most 16 at once.

    One instance per gateway, shared by every kind of review, so the cap holds for all of them.
    An apiserver that does not answer fails the check closed: a 500 for the caller.
    """

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self._in_flight = asyncio.Semaphore(MAX_REVIEWS_IN_FLIGHT)

    async def ask(self, path: str, review: Body, failure: str) -> Body:
        try:
            async with self._in_flight:
                return await self.client.request("POST", path, body=review)
        except KubeError as exc:
            log.warning("%s failed: %s", review["kind"], exc)
            raise ServiceError(failure) from exc


def credential_from_secret(body: Body) -> Credential | None:
    """The credential a labelled Secret holds, or None (logged) when it is not usable."""
    meta = body.get("metadata") or {}
    where = f"Secret {meta.get('namespace')}/{meta.get('name')}"
    data = body.get("data") or {}
    values: dict[str, str] = {}
    for key in ("accessKeyId", "secretAccessKey", "user", "groups"):
        if key in data:
            try:
                values[key] = base64.b64decode(data[key], validate=True).decode().strip()
            except (binascii.Error, UnicodeDecodeError, TypeError):
                log.warning("%s: %s is not base64 UTF-8; ignoring the Secret", where, key)
                return None
    missing = [k for k in ("accessKeyId", "secretAccessKey", "user") if not values.get(k)]
    if missing:
        log.warning("%s: no %s; ignoring the Secret", where, ", ".join(missing))
        return None
    if not re.fullmatch(ACCESS_KEY_PATTERN, values["accessKeyId"]):
        log.warning("%s: accessKeyId has characters SigV4 cannot carry; ignoring it", where)
        return None
    groups = tuple(g.strip() for g in values.get("groups", "").split(",") if g.strip())
    user = values["user"]
    if user.startswith(RESERVED_PREFIX) or any(g.startswith(RESERVED_PREFIX) for g in groups):
        log.warning("%s: users and groups starting with system: are Kubernetes'; ignoring", where)
        return None
    return Credential(values["accessKeyId"], values["secretAccessKey"], Principal(user, groups))


class ClusterAuthenticator:
    """Access keys from watched Secrets, bearer tokens through TokenReview."""

    def __init__(
        self, client: KubeClient, namespace: str, *, cache_seconds: float, reviews: Reviews
    ) -> None:
        self.store = StaticCredentials()
        self._secrets: dict[str, Credential] = {}
        self._tokens: TtlCache[str, Principal | bool] = TtlCache(cache_seconds, CACHE_SIZE)
        self._reviews = reviews
        self.secrets = Informer(
            client, "v1", "secrets", self._secret_changed,
            namespace=namespace, label_selector=f"{CREDENTIALS_LABEL}=true",
        )  # fmt: skip

    def _secret_changed(self, key: str, body: Body | None) -> None:
        credential = credential_from_secret(body) if body is not None else None
        if credential is None:
            self._secrets.pop(key, None)
        else:
            self._secrets[key] = credential
        self.store.replace(self._secrets.values())
        log.info("credentials: %d access keys from Secrets", len(self.store))

    def credential(self, access_key_id: str) -> Credential | None:
        return self.store.credential(access_key_id)

    async def token(self, token: str) -> Principal | None:
        if not _JWT.fullmatch(token):
            return None
        key = hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()
        cached = self._tokens.get(key)
        if cached is not None:
            return cached if isinstance(cached, Principal) else None
        review = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenReview",
            "spec": {"token": token},
        }
        answer = await self._reviews.ask(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            review,
            "The gateway could not check the bearer token.",
        )
        status = answer.get("status") or {}
        user = status.get("user") or {}
        principal: Principal | bool = False
        if status.get("authenticated") and user.get("username"):
            principal = Principal(str(user["username"]), tuple(user.get("groups") or ()))
        self._tokens.put(key, principal)
        return principal if isinstance(principal, Principal) else None


class SubjectAccessReviews:
    """RBAC on functions.kfaas.dev, asked of the apiserver and cached briefly."""

    def __init__(self, reviews: Reviews, *, cache_seconds: float) -> None:
        self._answers: TtlCache[tuple[Any, ...], bool] = TtlCache(cache_seconds, CACHE_SIZE)
        self._reviews = reviews

    async def allowed(
        self,
        principal: Principal,
        verb: str,
        namespace: str,
        name: str | None,
        *,
        plural: str = "functions",
    ) -> bool:
        key = (principal.user, principal.groups, verb, plural, namespace, name)
        cached = self._answers.get(key)
        if cached is not None:
            return cached
        attributes = {"group": API_GROUP, "resource": plural, "verb": verb}
        attributes["namespace"] = namespace
        if name is not None:
            attributes["name"] = name
        review = {
            "apiVersion": "authorization.k8s.io/v1",
            "kind": "SubjectAccessReview",
            "spec": {
                "user": principal.user,
                "groups": list(principal.groups),
                "resourceAttributes": attributes,
            },
        }
        answer = await self._reviews.ask(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            review,
            "The gateway could not check the caller's permissions.",
        )
        allowed = bool((answer.get("status") or {}).get("allowed"))
        self._answers.put(key, allowed)
        return allowed


class ClusterAuth:
    """The gateway's auth in a cluster, with the watch of credential Secrets it needs running."""

    def __init__(self, client: KubeClient, settings: Settings, platform_namespace: str) -> None:
        self.authenticator: ClusterAuthenticator | None = None
        self._task: asyncio.Task[None] | None = None
        if settings.auth == "none":
            log.warning("the Invoke API is unauthenticated (--auth none / KFAAS_AUTH=none)")
            self.auth = Auth("none")
            return
        reviews = Reviews(client)
        self.authenticator = ClusterAuthenticator(
            client, platform_namespace, cache_seconds=settings.auth_cache_seconds, reviews=reviews
        )
        access = SubjectAccessReviews(reviews, cache_seconds=settings.auth_cache_seconds)
        self.auth = Auth(settings.auth, self.authenticator, access)

    def start(self) -> None:
        if self.authenticator is not None and self._task is None:
            # Like the gateway's other watches: without it credentials go stale, so it must not
            # end silently; if it ends (it retries on its own), the process does.
            self._task = aiokit.guarded_task(
                "gateway-credentials",
                self.authenticator.secrets.run,
                log=log,
                on_return="fatal",
                on_fatal=aiokit.exit_process(log, status=1),
            )

    async def synced(self) -> None:
        """Returns once the credential Secrets have been listed (at once with --auth none)."""
        if self.authenticator is not None:
            await self.authenticator.secrets.synced.wait()

    async def stop(self) -> None:
        if self._task is not None:
            await aiokit.stop_tasks([self._task], grace_seconds=0)
