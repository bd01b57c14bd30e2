"""The `spec.codeSha256` a hand-written FunctionVersion must state: its template's code's (ADR 031).

Tests that write FunctionVersion objects themselves (as `kubectl apply` would) state the digest
the platform checks, computed here the one way the platform does (``template_code``).

Imported as `from version_digests import code_sha256` (pytest's `pythonpath = ["tests"]`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from kfaas.version_manifests import VersionTemplate, template_code


def code_sha256(template: Mapping[str, Any]) -> str:
    """Lambda's CodeSha256 of a version template's code (inline, image or zip), as published."""
    return template_code(VersionTemplate.model_validate(dict(template))).sha256
