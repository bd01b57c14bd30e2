"""A small asyncio client for the Kubernetes API, shared by the operator and the gateway.

Both talk to the API the same way: read objects, server-side apply what they own, patch status,
and keep an in-memory copy of a kind through list + watch (``Informer``). The official
``kubernetes`` package only loads the credentials (kubeconfig, in-cluster service account, token
refresh); requests go through aiohttp so nothing blocks the event loop. Every HTTP or connection
failure becomes a ``KubeError`` (STYLE 9), so callers handle one kind of failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import ssl
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp

from kfaas import aiokit
from kfaas.config import in_a_pod

log = logging.getLogger("kfaas.kube")

Body = dict[str, Any]


class KubeError(Exception):
    """A request to the Kubernetes API failed; ``status`` is the HTTP status (0: no answer)."""

    def __init__(
        self, status: int, reason: str, message: str, details: Mapping[str, Any] | None = None
    ) -> None:
        self.status = status
        self.reason = reason
        self.message = message
        # The Status' details: ``causes`` (``[{"field": "spec.memoryMB", …}]``) on a 422.
        self.details: Mapping[str, Any] = details or {}
        super().__init__(f"{status} {reason}: {message}" if status else message)

    @property
    def not_found(self) -> bool:
        return self.status == 404

    @property
    def gone(self) -> bool:
        return self.status == 410


@dataclass
class Credentials:
    """Where the API is and how to authenticate: from a kubeconfig or the pod's service account."""

    host: str
    ssl_context: ssl.SSLContext
    # Returns the current "Bearer …" value, re-read each time (service account tokens rotate).
    authorization: Callable[[], str | None] = field(default=lambda: None)

    @classmethod
    def load(cls, kubeconfig: str | None = None) -> Credentials:
        """In-cluster credentials inside a pod, else ``kubeconfig`` or ``$KUBECONFIG``."""
        from kubernetes import client, config

        configuration = client.Configuration()
        try:
            if kubeconfig is None and in_a_pod():
                config.load_incluster_config(client_configuration=configuration)
            else:
                config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        except (config.ConfigException, OSError) as exc:
            raise KubeError(
                0, "NoCredentials", f"cannot load Kubernetes credentials: {exc}"
            ) from exc
        context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
        if not configuration.verify_ssl:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if configuration.cert_file:
            context.load_cert_chain(configuration.cert_file, configuration.key_file)

        def authorization() -> str | None:
            # The loaders store "Bearer <token>" under BearerToken (older releases used
            # "authorization"); re-read each time, the in-cluster loader refreshes it.
            for key in ("BearerToken", "authorization"):
                value = configuration.get_api_key_with_prefix(key)
                if value:
                    return str(value)
            return None

        return cls(configuration.host.rstrip("/"), context, authorization)


def api_path(
    api_version: str, plural: str, namespace: str | None = None, name: str | None = None
) -> str:
    """The REST path of a collection or an object: ``/apis/apps/v1/namespaces/x/deployments/y``."""
    root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    path = root + (f"/namespaces/{namespace}" if namespace else "") + f"/{plural}"
    return path + (f"/{name}" if name else "")


class KubeClient:
    """The few API operations kfaas needs, each translating failures into ``KubeError``."""

    def __init__(self, credentials: Credentials, *, field_manager: str) -> None:
        self.credentials = credentials
        self.field_manager = field_manager
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> KubeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(ssl=self.credentials.ssl_context, limit=20)
            self._session = aiohttp.ClientSession(connector=connector)
        return self._session

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        token = self.credentials.authorization()
        if token:
            headers["Authorization"] = token
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        query: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Body:
        url = self.credentials.host + path + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body)
        try:
            async with self._http().request(
                method,
                url,
                data=data,
                headers=self._headers(content_type if data is not None else None),
                timeout=aiohttp.ClientTimeout(total=30),
            ) as response:
                text = await response.text()
                if response.status >= 400:
                    raise _error(response.status, text)
                return json.loads(text) if text else {}
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(0, "Unreachable", f"{method} {path}: {exc!r}") from exc

    async def get(self, api_version: str, plural: str, namespace: str | None, name: str) -> Body:
        return await self.request("GET", api_path(api_version, plural, namespace, name))

    async def find(
        self, api_version: str, plural: str, namespace: str | None, name: str
    ) -> Body | None:
        """The object, or None when it does not exist."""
        try:
            return await self.get(api_version, plural, namespace, name)
        except KubeError as exc:
            if exc.not_found:
                return None
            raise

    async def list(
        self,
        api_version: str,
        plural: str,
        namespace: str | None = None,
        *,
        label_selector: str | None = None,
    ) -> Body:
        query = {"labelSelector": label_selector} if label_selector else None
        return await self.request("GET", api_path(api_version, plural, namespace), query=query)

    async def apply(self, obj: Body, plural: str, *, field_manager: str | None = None) -> Body:
        """Server-side apply ``obj`` as this client's field manager, taking over conflicts."""
        meta = obj["metadata"]
        path = api_path(obj["apiVersion"], plural, meta.get("namespace"), meta["name"])
        return await self.request(
            "PATCH",
            path,
            query={"fieldManager": field_manager or self.field_manager, "force": "true"},
            body=obj,
            content_type="application/apply-patch+yaml",
        )

    async def patch(
        self,
        api_version: str,
        plural: str,
        namespace: str | None,
        name: str,
        patch: Body,
        *,
        subresource: str | None = None,
    ) -> Body:
        """A JSON merge patch (status with ``subresource="status"``)."""
        path = api_path(api_version, plural, namespace, name)
        return await self.request(
            "PATCH",
            path + (f"/{subresource}" if subresource else ""),
            query={"fieldManager": self.field_manager},
            body=patch,
            content_type="application/merge-patch+json",
        )

    async def create(self, obj: Body, plural: str, *, field_manager: str | None = None) -> Body:
        path = api_path(obj["apiVersion"], plural, obj["metadata"].get("namespace"))
        return await self.request(
            "POST", path, query={"fieldManager": field_manager or self.field_manager}, body=obj
        )

    async def replace(self, obj: Body, plural: str, *, field_manager: str | None = None) -> Body:
        """PUT ``obj`` whole; its ``metadata.resourceVersion`` is the API server's precondition."""
        meta = obj["metadata"]
        path = api_path(obj["apiVersion"], plural, meta.get("namespace"), meta["name"])
        return await self.request(
            "PUT", path, query={"fieldManager": field_manager or self.field_manager}, body=obj
        )

    async def delete(self, api_version: str, plural: str, namespace: str | None, name: str) -> bool:
        """Delete an object (children follow by garbage collection); False if it was gone."""
        try:
            await self.request(
                "DELETE",
                api_path(api_version, plural, namespace, name),
                body={"propagationPolicy": "Background"},
            )
        except KubeError as exc:
            if exc.not_found:
                return False
            raise
        return True

    async def watch(
        self,
        api_version: str,
        plural: str,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        resource_version: str,
        timeout_seconds: int = 300,
    ) -> AsyncIterator[Body]:
        """Watch events (``{"type", "object"}``) from ``resource_version`` until the server ends."""
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            query["labelSelector"] = label_selector
        url = self.credentials.host + api_path(api_version, plural, namespace)
        url += f"?{urlencode(query)}"
        try:
            async with self._http().get(
                url,
                headers=self._headers(),
                timeout=aiohttp.ClientTimeout(total=None, sock_read=timeout_seconds + 30),
            ) as response:
                if response.status >= 400:
                    raise _error(response.status, await response.text())
                async for line in response.content:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    if event.get("type") == "ERROR":
                        status = event.get("object", {})
                        raise KubeError(
                            int(status.get("code", 500)),
                            str(status.get("reason", "")),
                            str(status.get("message", "")),
                        )
                    yield event
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise KubeError(0, "Unreachable", f"watch {plural}: {exc!r}") from exc


def _error(status: int, text: str) -> KubeError:
    try:
        answer = json.loads(text)
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    details = answer.get("details")
    return KubeError(
        status,
        str(answer.get("reason", "")),
        str(answer.get("message", text)),
        details if isinstance(details, dict) else None,
    )


def object_key(obj: Body) -> str:
    meta = obj["metadata"]
    return f"{meta.get('namespace', '')}/{meta['name']}"


Listener = Callable[[str, Body | None], None]

# Like client-go's reflector: a failed list or watch is retried after 0.5 s, doubling up to 30 s;
# a watch that ran this long was healthy and the next failure starts from 0.5 s again.
WATCH_RESTART = aiokit.Backoff(first=0.5, most=30.0, healthy_after=10.0)


class Informer:
    """An in-memory copy of one kind, kept current by list + watch; tells a listener of changes.

    ``listener(key, obj)`` is called with ``namespace/name`` and the new object, or None when it
    was deleted. After a relist (the watch expired) deletions missed meanwhile are reported too.
    ``synced`` is set once the first list has been delivered. API failures and malformed answers
    are logged and retried under ``aiokit``'s guard (``WATCH_RESTART``); ``run`` ends only when
    cancelled or on an error of another kind (a listener's bug), which it raises.
    """

    def __init__(
        self,
        client: KubeClient,
        api_version: str,
        plural: str,
        listener: Listener,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> None:
        self.client = client
        self.api_version = api_version
        self.plural = plural
        self.listener = listener
        self.namespace = namespace
        self.label_selector = label_selector
        self.objects: dict[str, Body] = {}
        self.synced = asyncio.Event()

    async def run(self) -> None:
        await aiokit.supervise(
            f"watch of {self.plural}",
            self._list_and_watch,
            log=log,
            restart=WATCH_RESTART,
            expected=(KubeError,),
            restart_on=(ValueError, KeyError, TypeError),  # an unexpected answer
        )

    async def _list_and_watch(self) -> None:
        version = await self._relist()
        while True:
            try:
                version = await self._watch(version)
            except KubeError as exc:
                if not exc.gone:
                    raise
                version = await self._relist()  # the watch fell too far behind: list again

    async def _relist(self) -> str:
        answer = await self.client.list(
            self.api_version, self.plural, self.namespace, label_selector=self.label_selector
        )
        fresh = {}
        for item in answer.get("items", []):
            item.setdefault("apiVersion", self.api_version)
            fresh[object_key(item)] = item
        for key in set(self.objects) - set(fresh):
            del self.objects[key]
            self.listener(key, None)
        for key, item in fresh.items():
            known = self.objects.get(key)
            self.objects[key] = item
            if known is None or known["metadata"].get("resourceVersion") != item["metadata"].get(
                "resourceVersion"
            ):
                self.listener(key, item)
        self.synced.set()
        return str(answer["metadata"]["resourceVersion"])

    async def _watch(self, version: str) -> str:
        async for event in self.client.watch(
            self.api_version,
            self.plural,
            namespace=self.namespace,
            label_selector=self.label_selector,
            resource_version=version,
        ):
            obj = event["object"]
            version = str(obj["metadata"]["resourceVersion"])
            if event["type"] == "BOOKMARK":
                continue
            key = object_key(obj)
            if event["type"] == "DELETED":
                if self.objects.pop(key, None) is not None:
                    self.listener(key, None)
            else:
                self.objects[key] = obj
                self.listener(key, obj)
        return version


@contextlib.asynccontextmanager
async def running(*informers: Informer) -> AsyncIterator[list[asyncio.Task[None]]]:
    """Run informers as named tasks for the duration of the block.

    An informer that ends (on an error it does not retry) is logged: the block goes on with the
    copy it had, as before, but not silently.
    """
    tasks = [
        aiokit.guarded_task(
            f"informer-{informer.plural}",
            informer.run,
            log=log,
            on_return="fatal",
            on_fatal=aiokit.log_end(log),
        )
        for informer in informers
    ]
    try:
        yield tasks
    finally:
        await aiokit.stop_tasks(tasks, grace_seconds=0)
