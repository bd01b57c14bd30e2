"""The shapes of every failure a caller can see, in Lambda's words.

Two kinds of failure are kept apart (STYLE 8): runtime faults carry a stable `Runtime.*`,
`Sandbox.*` or `Function.*` type and a fixed message; a user's exception is reported with its own
type and a traceback trimmed of kfaas frames. The worker's bootstrap imports this module too, so it
stays free of anything heavier than the standard library's `traceback`.
"""

from __future__ import annotations

import os
import signal
import time
import traceback
from types import TracebackType
from typing import TypedDict

RUNTIME_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

# Lambda's synchronous response limit: 6 MB plus the 100 bytes it tolerates.
MAX_RESPONSE_BYTES = 6 * 1024 * 1024 + 100


class ErrorBody(TypedDict):
    errorMessage: str
    errorType: str
    stackTrace: list[str]


def error_body(error_type: str, message: str, trace: list[str] | None = None) -> ErrorBody:
    return {"errorMessage": message, "errorType": error_type, "stackTrace": trace or []}


def stack_trace(tb: TracebackType | None) -> list[str]:
    """The traceback as awslambdaric formats it, starting at the first frame outside kfaas."""
    frames = traceback.extract_tb(tb)
    for index, frame in enumerate(frames):
        if not frame.filename.startswith(RUNTIME_DIR):
            return traceback.format_list(frames[index:])
    return traceback.format_list(frames)


def user_error(exc: BaseException) -> ErrorBody:
    return error_body(type(exc).__name__, str(exc), stack_trace(exc.__traceback__))


# Init faults, worded as awslambdaric words them.
def import_module_error(module: str, exc: ImportError) -> ErrorBody:
    return error_body("Runtime.ImportModuleError", f"Unable to import module '{module}': {exc}")


def syntax_error(module: str, exc: SyntaxError) -> ErrorBody:
    trace = [f'  File "{exc.filename}" Line {exc.lineno}\n    {exc.text}']
    return error_body(
        "Runtime.UserCodeSyntaxError", f"Syntax error in module '{module}': {exc}", trace
    )


def handler_not_found(function: str, module: str) -> ErrorBody:
    return error_body(
        "Runtime.HandlerNotFound", f"Handler '{function}' missing on module '{module}'"
    )


def malformed_handler(handler: str, reason: str) -> ErrorBody:
    return error_body("Runtime.MalformedHandlerName", f"Bad handler '{handler}': {reason}")


def marshal_error(exc: BaseException) -> ErrorBody:
    return error_body("Runtime.MarshalError", f"Unable to marshal response: {exc}")


def timeout_error(request_id: str, timeout_seconds: float, now: float | None = None) -> ErrorBody:
    now = time.time() if now is None else now
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now * 1000) % 1000:03d}Z"
    message = f"{stamp} {request_id} Task timed out after {timeout_seconds:.2f} seconds"
    return {"errorMessage": message, "errorType": "Sandbox.Timedout", "stackTrace": []}


def exit_reason(code: int) -> str:
    """How Lambda (a Go program) names a process's end: `exit status 3`, `signal: killed`.

    `code` is a return code as `subprocess` reports it: negative for the signal that ended it.
    """
    if code >= 0:
        return f"exit status {code}"
    name = signal.strsignal(-code) or f"signal {-code}"
    return f"signal: {name.lower()}"


def exit_error(request_id: str, code: int) -> ErrorBody:
    if code == 0:
        message = f"RequestId: {request_id} Error: Runtime exited without providing a reason"
    else:
        reason = exit_reason(code)
        message = f"RequestId: {request_id} Error: Runtime exited with error: {reason}"
    return error_body("Runtime.ExitError", message)


def response_too_large(size: int) -> ErrorBody:
    return error_body(
        "Function.ResponseSizeTooLarge",
        f"Response payload size ({size} bytes) exceeded maximum allowed payload size "
        f"({MAX_RESPONSE_BYTES} bytes).",
    )
