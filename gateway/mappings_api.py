"""EventSourceMapping operations (ADR 024 slice 9).

Create/Get/Update/Delete/ListEventSourceMappings.
"""

from __future__ import annotations

from .management import Route

ROUTES: list[Route] = []
