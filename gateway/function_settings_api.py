"""Per-function settings (ADR 024 slice 5).

Concurrency, event invoke config, tags and account settings.
"""

from __future__ import annotations

from .management import Route

ROUTES: list[Route] = []
