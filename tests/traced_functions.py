"""The two functions the tracing tests invoke (ADR 030): `active` (`tracing.mode: Active`) and
`passthrough` (the default), one handler that answers with the trace context it was given.

tests/gateway/test_tracing.py (in-memory exporter) and test_tracing_otlp.py (an OTLP receiver)
both run them under kfaas dev; ``write_functions`` lays them out in a folder kfaas dev reads.
"""

from __future__ import annotations

from pathlib import Path

MANIFEST = """
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {name: active}
spec:
  runtime: python3.11
  handler: app.handler
  code: {path: ./src}
  tracing: {mode: Active}
---
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {name: passthrough}
spec:
  runtime: python3.11
  handler: app.handler
  code: {path: ./src}
"""
# Answers with the trace context the runtime handed it, in both forms.
APP = """
import os
def handler(event, context):
    return {k: os.environ.get(k) for k in ("TRACEPARENT", "_X_AMZN_TRACE_ID")}
"""


def write_functions(folder: Path) -> None:
    """``folder/functions.yaml`` and its code folder ``folder/src``."""
    (folder / "src").mkdir(exist_ok=True)
    (folder / "src" / "app.py").write_text(APP)
    (folder / "functions.yaml").write_text(MANIFEST)
