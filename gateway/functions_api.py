"""Function operations (ADR 024 slice 4).

CreateFunction, GetFunction, GetFunctionConfiguration, ListFunctions, UpdateFunctionCode,
UpdateFunctionConfiguration, DeleteFunction.
"""

from __future__ import annotations

from .management import Route

ROUTES: list[Route] = []
