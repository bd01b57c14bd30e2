"""`kfaas code-store` and `kfaas fetch-code`: settings read once, then the role runs (ADR 025)."""

from __future__ import annotations

import sys

from kfaas import aiokit


def code_store_command() -> int:
    from kfaas import telemetry
    from kfaas.codestore.main import run_code_store
    from kfaas.codestore.settings import StoreSettings
    from kfaas.config import Settings
    from kfaas.kube_clients import KubeError

    try:
        common = Settings.from_env()
        settings = StoreSettings.from_env()
    except ValueError as exc:
        print(f"kfaas code-store: {exc}", file=sys.stderr)
        return 2
    telemetry.configure_logging("code-store", common.log_level)
    try:
        return aiokit.run(run_code_store(settings))
    except KubeError as exc:
        print(f"kfaas code-store: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"kfaas code-store: cannot serve: {exc}", file=sys.stderr)
        return 1


def fetch_code_command() -> int:
    from kfaas.codestore.fetch import main
    from kfaas.codestore.settings import FetchSettings

    try:
        settings = FetchSettings.from_env()
    except ValueError as exc:
        print(f"kfaas fetch-code: {exc}", file=sys.stderr)
        return 2
    return main(settings)
