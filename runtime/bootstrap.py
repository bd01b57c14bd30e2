"""The default Python bootstrap: one worker process that imports the handler once and serves events.

Run as `python -m kfaas.runtime.bootstrap` by the runtime server for python3.x functions. It does
what awslambdaric does (handler resolution, Lambda's `context`, error shapes, marshalling) but
talks to the server over the private frame pipe (`frames.py`) when `_KFAAS_PIPE` names one, which
is cheaper than HTTP per event; without it, it speaks the Runtime API at `AWS_LAMBDA_RUNTIME_API`
like any other bootstrap. Imports are kept to the standard library's light modules so a worker is
ready in a few tens of milliseconds.
"""

from __future__ import annotations

import decimal
import importlib
import json
import os
import resource
import sys
from collections.abc import Callable
from typing import Any, Protocol

from kfaas.runtime import errors, frames
from kfaas.runtime.context import LambdaContext

Handler = Callable[[Any, LambdaContext], Any]


class Invocation:
    __slots__ = (
        "client_context",
        "cognito",
        "deadline_ms",
        "event",
        "function_arn",
        "request_id",
        "trace_id",
        "traceparent",
        "tracestate",
    )

    def __init__(self, meta: dict[str, Any], event: bytes) -> None:
        self.request_id: str = meta["id"]
        self.deadline_ms: int = int(meta.get("deadline") or 0)
        self.function_arn: str = meta.get("arn") or ""
        self.trace_id: str | None = meta.get("trace")
        self.client_context: str | None = meta.get("cc")
        self.cognito: str | None = meta.get("ci")
        self.traceparent: str | None = meta.get("tp")
        self.tracestate: str | None = meta.get("ts")
        self.event = event


class Channel(Protocol):
    def next(self) -> Invocation | None: ...
    def respond(self, request_id: str, body: bytes) -> None: ...
    def fail(self, request_id: str, error: errors.ErrorBody) -> None: ...
    def init_done(self) -> None: ...
    def init_failed(self, error: errors.ErrorBody) -> None: ...


class PipeChannel:
    def __init__(self, read_fd: int, write_fd: int) -> None:
        self._read_fd, self._write_fd = read_fd, write_fd

    def next(self) -> Invocation | None:
        frame = frames.read_frame(self._read_fd)
        return None if frame is None else Invocation(*frame)

    # The peak RSS rides along with each result: one getrusage call here saves the server a
    # /proc read per invocation for the REPORT line.
    def respond(self, request_id: str, body: bytes) -> None:
        meta = {"t": "ok", "id": request_id, "peak_mb": _peak_mb()}
        frames.write_frame(self._write_fd, meta, body)

    def fail(self, request_id: str, error: errors.ErrorBody) -> None:
        meta = {"t": "error", "id": request_id, "peak_mb": _peak_mb()}
        frames.write_frame(self._write_fd, meta, _dump(error))

    def init_done(self) -> None:
        frames.write_frame(self._write_fd, {"t": "ready"})

    def init_failed(self, error: errors.ErrorBody) -> None:
        frames.write_frame(self._write_fd, {"t": "init_error"}, _dump(error))


class RuntimeApiChannel:
    """The same loop over Lambda's Runtime API, for where no private pipe is given."""

    def __init__(self, address: str) -> None:
        import http.client  # only this channel pays for it

        self._connection = http.client.HTTPConnection(address)
        self._base = "/2018-06-01/runtime"

    def _call(self, method: str, path: str, body: bytes | None = None, **headers: str) -> Any:
        self._connection.request(method, self._base + path, body=body, headers=headers)
        response = self._connection.getresponse()
        response.read_body = response.read()  # type: ignore[attr-defined]
        return response

    def next(self) -> Invocation | None:
        response = self._call("GET", "/invocation/next")
        meta = {
            "id": response.getheader("Lambda-Runtime-Aws-Request-Id"),
            "deadline": response.getheader("Lambda-Runtime-Deadline-Ms"),
            "arn": response.getheader("Lambda-Runtime-Invoked-Function-Arn"),
            "trace": response.getheader("Lambda-Runtime-Trace-Id"),
            "cc": response.getheader("Lambda-Runtime-Client-Context"),
            "ci": response.getheader("Lambda-Runtime-Cognito-Identity"),
            "tp": response.getheader("traceparent"),
            "ts": response.getheader("tracestate"),
        }
        return Invocation(meta, response.read_body)

    def respond(self, request_id: str, body: bytes) -> None:
        self._call("POST", f"/invocation/{request_id}/response", body)

    def fail(self, request_id: str, error: errors.ErrorBody) -> None:
        headers = {"Lambda-Runtime-Function-Error-Type": error["errorType"]}
        self._call("POST", f"/invocation/{request_id}/error", _dump(error), **headers)

    def init_done(self) -> None:
        """The first `next` call tells the Runtime API that init is over."""

    def init_failed(self, error: errors.ErrorBody) -> None:
        headers = {"Lambda-Runtime-Function-Error-Type": error["errorType"]}
        self._call("POST", "/init/error", _dump(error), **headers)


def _peak_mb() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024  # KB on Linux


def _decimal(value: object) -> object:
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# awslambdaric stops escaping non-ASCII from python3.12 on; follow the requested version.
_ENSURE_ASCII = os.environ.get("AWS_EXECUTION_ENV") == "AWS_Lambda_python3.11"


def _dump(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=_ENSURE_ASCII, default=_decimal).encode()


def log_error(error: errors.ErrorBody) -> None:
    """Print the error the way awslambdaric does, so it lands in the invocation's log."""
    lines = [f"[ERROR] {error['errorType']}: {error['errorMessage']}"]
    if error["stackTrace"]:
        lines.append("Traceback (most recent call last):")
        lines.extend(line for entry in error["stackTrace"] for line in entry.splitlines())
    print("\n".join(lines), flush=True)


def load_handler(name: str) -> Handler:
    try:
        module_name, function_name = name.rsplit(".", 1)
    except ValueError as exc:
        raise InitError(errors.malformed_handler(name, str(exc))) from None
    try:
        if module_name.split(".")[0] in sys.builtin_module_names:
            raise InitError(
                errors.error_body(
                    "Runtime.BuiltInModuleConflict",
                    f"Cannot use built-in module {module_name} as a handler module",
                )
            )
        module = importlib.import_module(module_name.replace("/", "."))
    except ImportError as exc:
        raise InitError(errors.import_module_error(module_name, exc)) from None
    except SyntaxError as exc:
        raise InitError(errors.syntax_error(module_name, exc)) from None
    except Exception as exc:  # the module's own code raised while importing
        raise InitError(errors.user_error(exc)) from None
    handler = getattr(module, function_name, None)
    if handler is None:
        raise InitError(errors.handler_not_found(function_name, module_name))
    return handler  # type: ignore[no-any-return]


class InitError(Exception):
    def __init__(self, error: errors.ErrorBody) -> None:
        super().__init__(error["errorMessage"])
        self.error = error


def _json_header(raw: str | None) -> dict[str, Any] | None:
    if not raw:
        return None
    value = json.loads(raw)
    return value if isinstance(value, dict) else None


def _set_trace_environment(invocation: Invocation) -> None:
    # Handlers see the trace through `_X_AMZN_TRACE_ID` (as on Lambda) and `TRACEPARENT` /
    # `TRACESTATE` (the OpenTelemetry convention for passing context through the environment).
    for key, value in (
        ("_X_AMZN_TRACE_ID", invocation.trace_id),
        ("TRACEPARENT", invocation.traceparent),
        ("TRACESTATE", invocation.tracestate),
    ):
        if value:
            os.environ[key] = value
        else:
            os.environ.pop(key, None)


def handle(handler: Handler, invocation: Invocation) -> tuple[bytes, errors.ErrorBody | None]:
    """Run one event through the handler: the response bytes, or the error to report."""
    try:
        context = LambdaContext(
            invocation.request_id,
            invocation.deadline_ms,
            invocation.function_arn,
            _json_header(invocation.client_context),
            _json_header(invocation.cognito),
        )
        event = json.loads(invocation.event) if invocation.event else None
    except (ValueError, RecursionError) as exc:  # valid JSON can be nested past Python's limit
        return b"", errors.error_body("Runtime.UnmarshalError", f"Unable to unmarshal input: {exc}")
    try:
        result = handler(event, context)
    except Exception as exc:
        return b"", errors.user_error(exc)
    if isinstance(result, bytes):
        return result, None
    try:
        return _dump(result), None
    except (TypeError, ValueError) as exc:
        return b"", errors.marshal_error(exc)


def serve(channel: Channel, handler_name: str) -> int:
    try:
        handler = load_handler(handler_name)
    except InitError as exc:
        log_error(exc.error)
        channel.init_failed(exc.error)
        return 1
    channel.init_done()
    while (invocation := channel.next()) is not None:
        _set_trace_environment(invocation)
        body, error = handle(handler, invocation)
        if error is not None:
            log_error(error)
        # Everything the handler printed must reach the log pipe before the result does: the
        # server drains the log pipe when the result arrives and then closes the invocation.
        sys.stdout.flush()
        sys.stderr.flush()
        if error is None:
            channel.respond(invocation.request_id, body)
        else:
            channel.fail(invocation.request_id, error)
    return 0


def _prepare_process() -> Channel:
    task_root = os.environ.get("LAMBDA_TASK_ROOT") or os.getcwd()
    # `-m` put the working directory first on sys.path; Lambda puts the task root there instead.
    sys.path[:] = [p for p in sys.path if p not in ("", os.getcwd())]
    sys.path.insert(0, task_root)
    for stream in (sys.stdout, sys.stderr):
        stream.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    pipe = os.environ.pop("_KFAAS_PIPE", "")
    if pipe:
        read_fd, write_fd = (int(fd) for fd in pipe.split(","))
        return PipeChannel(read_fd, write_fd)
    return RuntimeApiChannel(os.environ["AWS_LAMBDA_RUNTIME_API"])


def main() -> int:
    channel = _prepare_process()
    return serve(channel, sys.argv[1] if len(sys.argv) > 1 else os.environ.get("_HANDLER", ""))


if __name__ == "__main__":
    sys.exit(main())
