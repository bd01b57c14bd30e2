"""`kfaas runtime` / `python -m kfaas.runtime`: one runtime instance, configured by environment.

Thin on purpose (STYLE 6), and careful about order: configuration is read and the workers are
spawned before the server's modules (asyncio, uvloop) are imported, so worker start-up overlaps
with ours. See ADR 002 for the environment variables.
"""

from __future__ import annotations

import sys
import time

USAGE = """usage: kfaas runtime [-h]

Serve one function instance: POST /invoke, GET /healthz, GET /metrics on
KFAAS_RUNTIME_HOST:KFAAS_RUNTIME_PORT, with KFAAS_PER_INSTANCE worker processes.
Configured only by environment variables (docs/decisions/002-gateway-runtime-protocol.md):
_HANDLER, LAMBDA_TASK_ROOT, AWS_LAMBDA_FUNCTION_NAME, AWS_LAMBDA_FUNCTION_MEMORY_SIZE,
KFAAS_RUNTIME, KFAAS_TIMEOUT_SECONDS, KFAAS_PER_INSTANCE, KFAAS_NAMESPACE,
KFAAS_RUNTIME_HOST, KFAAS_RUNTIME_PORT, KFAAS_RUNTIME_API_PORT, KFAAS_MEMORY_LIMIT,
KFAAS_READY_FD, KFAAS_PYTHON_CHANNEL, KFAAS_UVLOOP, KFAAS_RUNTIME_TOKEN (the token /invoke
requires, ADR 011).
"""


def main(argv: list[str] | None = None) -> int:
    started = time.monotonic()
    args = sys.argv[1:] if argv is None else argv
    if any(arg in ("-h", "--help") for arg in args):
        sys.stdout.write(USAGE)
        return 0
    if args:
        sys.stderr.write(USAGE + f"error: unexpected arguments {args}\n")
        return 2
    from kfaas.runtime.config import ConfigError, config_from_env
    from kfaas.runtime.startup import prepare

    try:
        config = config_from_env()
    except ConfigError as exc:
        sys.stderr.write(f"kfaas runtime: {exc}\n")
        return 2
    prepared = prepare(config)

    from kfaas.runtime.server import serve

    return serve(prepared, started)


if __name__ == "__main__":
    sys.exit(main())
