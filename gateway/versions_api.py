"""Versions and aliases (ADR 024 slice 6).

PublishVersion, ListVersionsByFunction, Create/Get/Update/Delete/ListAliases.
"""

from __future__ import annotations

from .management import Route

ROUTES: list[Route] = []
