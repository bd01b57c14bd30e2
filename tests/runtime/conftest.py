"""Fixtures for the runtime tests; the helpers live in `instances.py` (`runtime.instances`)."""

from __future__ import annotations

from runtime.instances import start

__all__ = ["start"]
