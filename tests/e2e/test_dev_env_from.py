"""A Function's `envFrom` works in `kfaas dev` from `kind: Secret` and `kind: ConfigMap` documents.

As the kubelet does: each key becomes a variable (with the entry's `prefix`), a later source wins a
name, `environment` wins over all of them, keys that are no variable name are skipped, and an
optional source that does not exist gives nothing. A missing required source fails the instance's
start with a message naming it, and writing the document lets the next instance start.
"""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from pathlib import Path

from devserver import DevServer, dev_server
from waiting import eventually

FUNCTION = """
apiVersion: kfaas.dev/v1alpha1
kind: Function
metadata: {name: settings}
spec:
  runtime: python3.11
  handler: app.handler
  code:
    inline:
      app.py: |
        import os
        def handler(event, context):
            return {name: os.environ.get(name) for name in event["names"]}
  environment: {MODE: from-environment}
  envFrom:
    - configMapRef: {name: app-settings}
    - secretRef: {name: app-secrets}
      prefix: SECRET_
    - secretRef: {name: not-there, optional: true}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: app-settings}
data: {MODE: from-configmap, COLOR: blue, 1st-key: skipped}
"""

SECRET = f"""
---
apiVersion: v1
kind: Secret
metadata: {{name: app-secrets}}
data: {{TOKEN: {base64.b64encode(b"s3cret").decode()}}}
"""

NAMES = ["MODE", "COLOR", "SECRET_TOKEN", "TOKEN"]


def invoke(dev: DevServer) -> dict[str, object]:
    request = urllib.request.Request(
        f"{dev.url}/2015-03-31/functions/settings/invocations",
        data=json.dumps({"names": NAMES}).encode(),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=60) as reply:
        return dict(json.loads(reply.read()))


def test_env_from_reads_the_documents_beside_the_manifests(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests.yaml"
    manifests.write_text(FUNCTION + SECRET)
    with dev_server([manifests]) as dev:
        assert invoke(dev) == {
            "MODE": "from-environment",
            "COLOR": "blue",
            "SECRET_TOKEN": "s3cret",
            "TOKEN": None,
        }


def test_a_missing_required_source_is_named_until_it_is_written(tmp_path: Path) -> None:
    manifests = tmp_path / "manifests.yaml"
    # A provisioned instance starts at once: its failure needs no invocation to show.
    provisioned = FUNCTION.replace(
        "  environment:", "  concurrency: {provisioned: 1}\n  environment:"
    )
    manifests.write_text(provisioned)
    with dev_server([manifests]) as dev:
        eventually(
            lambda: "envFrom: Secret default/app-secrets does not exist" in dev.output(),
            within=30,
            what="the missing Secret named in the log",
        )
        manifests.write_text(provisioned + SECRET)

        def answers() -> dict[str, object] | None:
            try:
                return invoke(dev)
            except urllib.error.HTTPError:
                return None

        answer = eventually(answers, within=60, what="an instance started with the Secret")
        assert answer["SECRET_TOKEN"] == "s3cret"
