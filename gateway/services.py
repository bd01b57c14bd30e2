"""The objects one gateway is made of, wired once and shared by its request handlers."""

from __future__ import annotations

from dataclasses import dataclass, field

from kfaas.code_capabilities import new_key
from kfaas.code_store import CodeStore
from kfaas.object_store import ObjectStore

from .asyncq import AsyncQueue
from .dispatcher import Dispatcher
from .invoker import Invoker
from .metrics import GatewayMetrics
from .registry import FunctionRegistry
from .routing import Router
from .trigger_auth import TriggerAuth


@dataclass
class Services:
    registry: FunctionRegistry
    router: Router
    invoker: Invoker
    metrics: GatewayMetrics
    async_queue: AsyncQueue
    dispatcher: Dispatcher
    trigger_auth: TriggerAuth
    # The management API's stores (ADR 024, 025); None where only the Invoke API is served.
    objects: ObjectStore | None = None
    code_store: CodeStore | None = None
    # Signs GetFunction's Code.Location URLs (ADR 025): the code store's key in a cluster, so a
    # URL made by one gateway replica opens on any; random per process otherwise.
    location_key: str = field(default_factory=new_key, repr=False)
    # The platform's Redis (KFAAS_REDIS_URL): where a mapping named `arn:kfaas:redis:::stream/<s>`
    # reads; None where there is none.
    platform_redis_url: str | None = None
