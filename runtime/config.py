"""What one runtime instance is told by its environment, and what its workers are told in turn.

ADR 002 makes environment variables the whole interface between whoever starts an instance (the
operator's pod spec, the local backend) and the instance. This module turns that environment into a
typed value once, and computes the Lambda-reserved variables each worker process sees, so both
directions are plain functions that tests can call without starting anything.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from kfaas import runtimetoken
from kfaas.config import wants_otlp

PYTHON_RUNTIMES = ("python3.11", "python3.12", "python3.13")
PROVIDED = "provided"

# Lambda's defaults where a local host has nothing better to offer.
_LAMBDA_PATH = "/var/lang/bin:/usr/local/bin:/usr/bin/:/bin:/opt/bin"
_LAMBDA_LD_LIBRARY_PATH = "/var/lang/lib:/lib64:/usr/lib64:/var/runtime:/var/runtime/lib:/opt/lib"
RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__))


class ConfigError(ValueError):
    """The environment does not describe a runnable instance."""


@dataclass(frozen=True)
class RuntimeConfig:
    runtime: str
    handler: str
    task_root: str
    function_name: str
    namespace: str
    function_version: str
    memory_mb: int
    timeout_seconds: float
    per_instance: int
    host: str
    port: int
    runtime_api_port: int
    region: str
    enforce_memory_limit: bool
    ready_fd: int | None
    # How the default Python bootstrap gets its events: the private frame pipe ("pipe", fast) or
    # the Runtime API over HTTP ("runtime-api", what every other bootstrap uses).
    python_channel: str
    # The environment handed on to workers: the function's own variables (everything that is not
    # kfaas configuration); reserved Lambda variables are layered on top per worker.
    function_environment: Mapping[str, str]
    # The token `/invoke` must present (ADR 011); None: the caller is not checked (an instance
    # started by hand). Never handed to workers: it is a KFAAS_ variable.
    runtime_token: str | None = field(default=None, repr=False)
    # Serve on uvloop when it is installed (KFAAS_UVLOOP=0: the plain asyncio loop).
    uvloop: bool = True
    # Export the runtime's spans over OTLP as this service, when the standard OTEL_* variables
    # ask for it (ADR 030); None: no export.
    trace_service: str | None = None

    @property
    def is_python(self) -> bool:
        return self.runtime != PROVIDED

    @property
    def function_arn(self) -> str:
        # Namespaces stand in for accounts, as in the Invoke API's ARN form (DESIGN).
        return f"arn:aws:lambda:{self.region}:{self.namespace}:function:{self.function_name}"


def _int(environ: Mapping[str, str], key: str, default: int, low: int, high: int) -> int:
    raw = environ.get(key, "")
    try:
        value = int(raw) if raw else default
    except ValueError as exc:
        raise ConfigError(f"{key}={raw!r} is not an integer") from exc
    if not low <= value <= high:
        raise ConfigError(f"{key}={value} is outside {low}..{high}")
    return value


def config_from_env(
    environ: Mapping[str, str] | None = None, interpreter: tuple[int, int] = sys.version_info[:2]
) -> RuntimeConfig:
    """The instance's configuration; ``interpreter`` is the (major, minor) Python it runs on.

    ``environ`` defaults to this process's environment: `kfaas runtime` reads it here, once.
    """
    environ = os.environ if environ is None else environ
    default_runtime = f"python{interpreter[0]}.{interpreter[1]}"
    runtime = environ.get("KFAAS_RUNTIME") or default_runtime
    if runtime not in (*PYTHON_RUNTIMES, PROVIDED):
        raise ConfigError(
            f"KFAAS_RUNTIME={runtime!r}: expected one of {PYTHON_RUNTIMES} or provided"
        )
    # Workers run this interpreter: a Python runtime is served by its own version only, so
    # AWS_EXECUTION_ENV and the handler's sys.version tell the same (ADR 016).
    if runtime != PROVIDED and runtime != default_runtime:
        raise ConfigError(
            f"KFAAS_RUNTIME={runtime} but this is Python {interpreter[0]}.{interpreter[1]} "
            f"({sys.executable}): {runtime} functions need an image (or interpreter) of "
            f"{runtime.replace('python', 'Python ')}; in a cluster set "
            f"functions.runtimeImages.{runtime} in the chart values"
        )
    handler = environ.get("_HANDLER", "")
    if runtime != PROVIDED and not handler:
        raise ConfigError("_HANDLER must name the handler (module.function)")
    timeout_raw = environ.get("KFAAS_TIMEOUT_SECONDS", "3")
    try:
        timeout = float(timeout_raw)
    except ValueError as exc:
        raise ConfigError(f"KFAAS_TIMEOUT_SECONDS={timeout_raw!r} is not a number") from exc
    if not 0 < timeout <= 900:
        raise ConfigError(f"KFAAS_TIMEOUT_SECONDS={timeout} is outside (0, 900]")
    ready_raw = environ.get("KFAAS_READY_FD", "")
    function_name = environ.get("AWS_LAMBDA_FUNCTION_NAME") or "function"
    channel = environ.get("KFAAS_PYTHON_CHANNEL") or "pipe"
    if channel not in ("pipe", "runtime-api"):
        raise ConfigError(f"KFAAS_PYTHON_CHANNEL={channel!r}: expected pipe or runtime-api")
    return RuntimeConfig(
        runtime=runtime,
        handler=handler,
        task_root=os.path.abspath(environ.get("LAMBDA_TASK_ROOT") or os.getcwd()),
        function_name=function_name,
        namespace=environ.get("KFAAS_NAMESPACE") or "default",
        function_version=environ.get("AWS_LAMBDA_FUNCTION_VERSION") or "$LATEST",
        memory_mb=_int(environ, "AWS_LAMBDA_FUNCTION_MEMORY_SIZE", 128, 1, 10240),
        timeout_seconds=timeout,
        per_instance=_int(environ, "KFAAS_PER_INSTANCE", 1, 1, 1000),
        host=environ.get("KFAAS_RUNTIME_HOST") or "0.0.0.0",
        port=_int(environ, "KFAAS_RUNTIME_PORT", 8080, 0, 65535),
        runtime_api_port=_int(environ, "KFAAS_RUNTIME_API_PORT", 9001, 0, 65535),
        region=environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or "us-east-1",
        enforce_memory_limit=environ.get("KFAAS_MEMORY_LIMIT", "") in ("1", "true", "True"),
        ready_fd=_int(environ, "KFAAS_READY_FD", 0, 0, 1 << 20) if ready_raw else None,
        python_channel=channel,
        function_environment={k: v for k, v in environ.items() if not k.startswith("KFAAS_")},
        runtime_token=environ.get(runtimetoken.TOKEN_ENV) or None,
        uvloop=environ.get("KFAAS_UVLOOP", "1") != "0",
        trace_service=(environ.get("OTEL_SERVICE_NAME") or function_name)
        if wants_otlp(environ)
        else None,
    )


def forget_runtime_token() -> None:
    """Take the runtime token out of this process's environment, so nothing started later
    inherits it (ADR 011); the config read before keeps it for ``/invoke``."""
    os.environ.pop(runtimetoken.TOKEN_ENV, None)


def log_stream_name(now: float | None = None) -> str:
    """A fresh stream per execution environment, in Lambda's `2024/01/31/[$LATEST]<hex>` shape."""
    day = time.strftime("%Y/%m/%d", time.gmtime(now))
    return f"{day}/[$LATEST]{os.urandom(16).hex()}"  # not `secrets`: 5 ms to import


INITIALIZATION_TYPES = ("on-demand", "provisioned-concurrency")


def initialization_type(environ: Mapping[str, str]) -> str:
    """Lambda's ``AWS_LAMBDA_INITIALIZATION_TYPE`` as the platform started this instance: a
    provisioned instance (``spec.concurrency.provisioned``) is told so, any other is on-demand."""
    value = environ.get("AWS_LAMBDA_INITIALIZATION_TYPE", "")
    return value if value in INITIALIZATION_TYPES else "on-demand"


def worker_environment(config: RuntimeConfig, runtime_api: str, stream: str) -> dict[str, str]:
    """The environment of one worker: the function's variables under Lambda's reserved ones.

    Reserved names win over the function's own, as Lambda refuses to let users set them.
    """
    env = dict(config.function_environment)
    env.update(
        {
            "_HANDLER": config.handler,
            "LAMBDA_TASK_ROOT": config.task_root,
            "LAMBDA_RUNTIME_DIR": config.function_environment.get("LAMBDA_RUNTIME_DIR")
            or RUNTIME_DIR,
            "AWS_LAMBDA_RUNTIME_API": runtime_api,
            "AWS_LAMBDA_FUNCTION_NAME": config.function_name,
            "AWS_LAMBDA_FUNCTION_VERSION": config.function_version,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(config.memory_mb),
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{config.function_name}",
            "AWS_LAMBDA_LOG_STREAM_NAME": stream,
            "AWS_LAMBDA_INITIALIZATION_TYPE": initialization_type(config.function_environment),
            "AWS_REGION": config.region,
            "AWS_DEFAULT_REGION": config.region,
            "TZ": ":UTC",
            "LANG": "en_US.UTF-8",
            "PATH": config.function_environment.get("PATH") or _LAMBDA_PATH,
            "LD_LIBRARY_PATH": config.function_environment.get("LD_LIBRARY_PATH")
            or _LAMBDA_LD_LIBRARY_PATH,
        }
    )
    if config.is_python:
        env["AWS_EXECUTION_ENV"] = f"AWS_Lambda_{config.runtime}"
    else:
        env.pop("AWS_EXECUTION_ENV", None)
    env.pop("_X_AMZN_TRACE_ID", None)  # set per invocation, never inherited
    return env
