"""The objects one gateway is made of, wired once and shared by its request handlers."""

from __future__ import annotations

from dataclasses import dataclass

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
