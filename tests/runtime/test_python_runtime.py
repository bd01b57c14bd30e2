"""The default Python runtime as a handler sees it: event, context, environment, errors, logs."""

from __future__ import annotations

import base64
import json
import re
import sys

import pytest
from runtime.instances import Starter

APP = """
import os, time
print("init line")

def handler(event, context):
    print("handling", event["n"])
    env_keys = [
        "_HANDLER", "LAMBDA_TASK_ROOT", "LAMBDA_RUNTIME_DIR", "AWS_LAMBDA_RUNTIME_API",
        "AWS_LAMBDA_FUNCTION_NAME", "AWS_LAMBDA_FUNCTION_VERSION",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
        "AWS_LAMBDA_LOG_GROUP_NAME", "AWS_LAMBDA_LOG_STREAM_NAME", "AWS_LAMBDA_INITIALIZATION_TYPE",
        "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_EXECUTION_ENV", "TZ", "LANG", "PATH",
        "LD_LIBRARY_PATH", "_X_AMZN_TRACE_ID", "MY_SETTING", "KFAAS_PER_INSTANCE",
    ]
    cc = context.client_context
    return {
        "event": event,
        "cwd": os.getcwd(),
        "env": {k: os.environ.get(k) for k in env_keys},
        "context": {
            "function_name": context.function_name,
            "function_version": context.function_version,
            "invoked_function_arn": context.invoked_function_arn,
            "memory_limit_in_mb": context.memory_limit_in_mb,
            "aws_request_id": context.aws_request_id,
            "log_group_name": context.log_group_name,
            "log_stream_name": context.log_stream_name,
            "remaining": context.get_remaining_time_in_millis(),
            "cognito_identity_id": context.identity.cognito_identity_id,
            "cognito_identity_pool_id": context.identity.cognito_identity_pool_id,
            "client": cc.client.installation_id if cc and cc.client else None,
            "custom": cc.custom if cc else None,
            "client_env": cc.env if cc else None,
        },
    }
"""


async def test_event_context_and_environment(start: Starter) -> None:
    instance = await start({"app.py": APP}, AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256", MY_SETTING="x")
    client_context = {
        "client": {"installation_id": "inst-1"},
        "custom": {"k": "v"},
        "env": {"e": 1},
    }
    reply = await instance.invoke(
        {"n": 1},
        headers={
            "Lambda-Runtime-Aws-Request-Id": "req-1",
            "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            "Lambda-Runtime-Client-Context": json.dumps(client_context),
            "Lambda-Runtime-Cognito-Identity": json.dumps(
                {"cognitoIdentityId": "id-1", "cognitoIdentityPoolId": "pool-1"}
            ),
            "Lambda-Runtime-Invoked-Function-Arn": "arn:aws:lambda:us-east-1:tests:function:fn:v1",
        },
    )
    assert reply.status == 200 and not reply.function_error
    assert reply.headers["Lambda-Runtime-Aws-Request-Id"] == "req-1"
    assert reply.headers["X-Kfaas-Cold-Start"] == "1"
    assert float(reply.headers["X-Kfaas-Init-Duration-Ms"]) > 0
    assert float(reply.headers["X-Kfaas-Duration-Ms"]) > 0
    result = reply.json()
    assert result["event"] == {"n": 1}
    assert result["cwd"] == str(instance.task_root)
    context = result["context"]
    assert context["function_name"] == "fn"
    assert context["function_version"] == "$LATEST"
    assert context["invoked_function_arn"] == "arn:aws:lambda:us-east-1:tests:function:fn:v1"
    assert context["memory_limit_in_mb"] == "256"
    assert context["aws_request_id"] == "req-1"
    assert context["log_group_name"] == "/aws/lambda/fn"
    assert re.fullmatch(r"\d{4}/\d\d/\d\d/\[\$LATEST\][0-9a-f]{32}", context["log_stream_name"])
    assert 2000 < context["remaining"] <= 3000  # default timeout: 3 s
    assert context["cognito_identity_id"] == "id-1"
    assert context["cognito_identity_pool_id"] == "pool-1"
    assert context["client"] == "inst-1"
    assert context["custom"] == {"k": "v"} and context["client_env"] == {"e": 1}
    env = result["env"]
    assert env["_HANDLER"] == "app.handler"
    assert env["LAMBDA_TASK_ROOT"] == str(instance.task_root)
    assert env["LAMBDA_RUNTIME_DIR"]
    assert re.fullmatch(r"127\.0\.0\.1:\d+", env["AWS_LAMBDA_RUNTIME_API"])
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "fn"
    assert env["AWS_LAMBDA_FUNCTION_VERSION"] == "$LATEST"
    assert env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["AWS_LAMBDA_LOG_GROUP_NAME"] == "/aws/lambda/fn"
    assert env["AWS_LAMBDA_LOG_STREAM_NAME"] == context["log_stream_name"]
    assert env["AWS_LAMBDA_INITIALIZATION_TYPE"] == "on-demand"  # no platform variable: on-demand
    assert env["AWS_REGION"] == env["AWS_DEFAULT_REGION"] == "us-east-1"
    assert re.fullmatch(r"AWS_Lambda_python3\.1\d", env["AWS_EXECUTION_ENV"])
    assert env["TZ"] == ":UTC" and env["LANG"] and env["PATH"] and env["LD_LIBRARY_PATH"]
    assert env["_X_AMZN_TRACE_ID"] == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    assert env["MY_SETTING"] == "x"  # the function's own environment passes through
    assert env["KFAAS_PER_INSTANCE"] is None  # the runtime's configuration does not

    second = await instance.invoke({"n": 2})
    assert "X-Kfaas-Cold-Start" not in second.headers  # the handler was imported once
    assert second.json()["env"]["_X_AMZN_TRACE_ID"] is None  # per invocation, not sticky
    assert re.fullmatch(r"[0-9a-f-]{36}", second.headers["Lambda-Runtime-Aws-Request-Id"])


async def test_the_runtime_reported_is_the_interpreter_that_runs(start: Starter) -> None:
    app = (
        "import os, sys\ndef handler(e, c):\n"
        "    return [os.environ['AWS_EXECUTION_ENV'], list(sys.version_info[:2])]\n"
    )
    own = f"python{sys.version_info.major}.{sys.version_info.minor}"
    instance = await start({"app.py": app}, KFAAS_RUNTIME=own)
    assert (await instance.invoke({})).json() == [f"AWS_Lambda_{own}", [*sys.version_info[:2]]]
    # Another Python runtime is not served by this interpreter under its name (ADR 016).
    other = "python3.13" if own != "python3.13" else "python3.12"
    with pytest.raises(AssertionError, match=f"KFAAS_RUNTIME={other} but this is Python"):
        await start({"app.py": app}, KFAAS_RUNTIME=other)


async def test_nested_module_handler_and_return_values(start: Starter) -> None:
    files = {
        "pkg/__init__.py": "",
        "pkg/mod.py": """
            def handler(event, context):
                kind = event["kind"]
                if kind == "bytes":
                    return b"raw\\x00bytes"
                if kind == "none":
                    return None
                if kind == "unicode":
                    return {"text": "h\\u00e9llo"}
                return {"set": {1, 2}}
        """,
    }
    instance = await start(files, _HANDLER="pkg/mod.handler")
    assert (await instance.invoke({"kind": "bytes"})).body == b"raw\x00bytes"
    assert (await instance.invoke({"kind": "none"})).body == b"null"
    assert (await instance.invoke({"kind": "unicode"})).json() == {"text": "h\u00e9llo"}
    marshal = await instance.invoke({"kind": "set"})
    assert marshal.function_error
    assert marshal.json() == {
        "errorMessage": "Unable to marshal response: Object of type set is not JSON serializable",
        "errorType": "Runtime.MarshalError",
        "stackTrace": [],
    }


async def test_user_exception_shape_and_trimmed_trace(start: Starter) -> None:
    app = """
        def helper():
            raise ValueError("bad input")

        def handler(event, context):
            helper()
    """
    instance = await start({"app.py": app})
    reply = await instance.invoke({}, headers={"X-Amz-Log-Type": "Tail"})
    assert reply.status == 200 and reply.function_error
    error = reply.json()
    assert error["errorType"] == "ValueError"
    assert error["errorMessage"] == "bad input"
    root = instance.task_root
    assert error["stackTrace"] == [
        f'  File "{root}/app.py", line 6, in handler\n    helper()\n',
        f'  File "{root}/app.py", line 3, in helper\n    raise ValueError("bad input")\n',
    ]
    tail = base64.b64decode(reply.headers["X-Amz-Log-Result"]).decode()
    assert "[ERROR] ValueError: bad input" in tail
    assert "kfaas" not in json.dumps(error)
    assert (await instance.invoke({})).function_error  # the worker lives on after user errors


async def test_init_errors(start: Starter) -> None:
    cases = {
        "import": (
            {"app.py": "import not_a_module_kfaas\ndef handler(e, c): pass\n"},
            "Runtime.ImportModuleError",
            "Unable to import module 'app': No module named 'not_a_module_kfaas'",
        ),
        "missing": (
            {"app.py": "def other(e, c): pass\n"},
            "Runtime.HandlerNotFound",
            "Handler 'handler' missing on module 'app'",
        ),
        "syntax": (
            {"app.py": "def handler(e, c)\n    pass\n"},
            "Runtime.UserCodeSyntaxError",
            "Syntax error in module 'app': ",
        ),
    }
    for files, error_type, message in cases.values():
        instance = await start(files)  # an init error still counts as ready
        assert (await instance.get("/healthz")).status == 200
        for _ in range(2):  # answered to every invocation: each one re-initialises, as on Lambda
            reply = await instance.invoke({}, headers={"X-Amz-Log-Type": "Tail"})
            assert reply.function_error
            error = reply.json()
            assert error["errorType"] == error_type
            assert error["errorMessage"].startswith(message)
            tail = base64.b64decode(reply.headers["X-Amz-Log-Result"]).decode()
            assert f"[ERROR] {error_type}" in tail
            assert tail.splitlines()[-1].startswith("REPORT RequestId:")
        restarts = [e for e in instance.events() if e["event"] == "worker_restart"]
        assert restarts and restarts[0]["reason"] == "init_error"


async def test_log_lines_tail_and_report(start: Starter) -> None:
    app = """
        import sys
        print("init output")
        def handler(event, context):
            print("line one", event)
            sys.stderr.write("to stderr\\n")
            sys.stdout.write("no newline at the end")
            return "ok"
    """
    instance = await start({"app.py": app})
    first = await instance.invoke(1, headers={"X-Amz-Log-Type": "Tail"})
    second = await instance.invoke(2, headers={"X-Amz-Log-Type": "Tail"})
    id1 = first.headers["Lambda-Runtime-Aws-Request-Id"]
    id2 = second.headers["Lambda-Runtime-Aws-Request-Id"]
    tail1 = base64.b64decode(first.headers["X-Amz-Log-Result"]).decode().splitlines()
    assert tail1[0] == f"START RequestId: {id1} Version: $LATEST"
    assert tail1[1:4] == ["line one 1", "to stderr", "no newline at the end"]
    assert tail1[4] == f"END RequestId: {id1}"
    report = tail1[5].split("\t")
    assert report[0] == f"REPORT RequestId: {id1}"
    assert re.fullmatch(r"Duration: \d+\.\d\d ms", report[1])
    assert re.fullmatch(r"Billed Duration: \d+ ms", report[2])
    assert report[3] == "Memory Size: 128 MB"
    assert (
        re.fullmatch(r"Max Memory Used: \d+ MB", report[4]) and report[4] != "Max Memory Used: 0 MB"
    )
    assert re.fullmatch(r"Init Duration: \d+\.\d\d ms", report[5])
    tail2 = base64.b64decode(second.headers["X-Amz-Log-Result"]).decode().splitlines()
    assert tail2[1] == "line one 2" and "line one 1" not in tail2
    assert len(tail2[-1].split("\t")) == 5  # no Init Duration on a warm invocation
    log = instance.log().splitlines()
    assert "init\tinit output" in log
    assert f"{id1}\tline one 1" in log and f"{id1}\tto stderr" in log
    assert f"{id2}\tline one 2" in log
    assert log.index(f"END RequestId: {id1}") < log.index(
        f"START RequestId: {id2} Version: $LATEST"
    )
    assert "X-Amz-Log-Result" not in (await instance.invoke(3)).headers


async def test_no_log_leaks_between_back_to_back_requests(start: Starter) -> None:
    app = """
        def handler(event, context):
            for i in range(200):
                print(f"req {event} line {i}")
            return event
    """
    instance = await start({"app.py": app})
    for n in range(20):
        reply = await instance.invoke(n, headers={"X-Amz-Log-Type": "Tail"})
        tail = base64.b64decode(reply.headers["X-Amz-Log-Result"]).decode()
        assert f"req {n} line 199\nEND RequestId" in tail
        assert f"req {n - 1} " not in tail


async def test_megabytes_of_output(start: Starter) -> None:
    app = """
        def handler(event, context):
            line = "x" * 1000
            for _ in range(5000):
                print(line)
            print("y" * 300_000)  # one line far longer than a pipe buffer
            print("last line")
            return "done"
    """
    instance = await start({"app.py": app})
    reply = await instance.invoke({}, headers={"X-Amz-Log-Type": "Tail"})
    assert reply.json() == "done"
    tail = base64.b64decode(reply.headers["X-Amz-Log-Result"])
    assert len(tail) == 4096
    assert b"last line\nEND RequestId" in tail
    assert tail.endswith(b"\n") and b"REPORT RequestId" in tail
    assert (await instance.invoke({})).json() == "done"
    assert instance.log().count("x" * 1000) == 10000


async def test_healthz_metrics_and_api_errors(start: Starter) -> None:
    app = (
        "def handler(e, c):\n    if e == 'fail':\n        raise RuntimeError('no')\n    return e\n"
    )
    instance = await start({"app.py": app})
    assert (await instance.get("/healthz")).status == 200
    await instance.invoke("ok")
    await instance.invoke("fail")
    metrics = (await instance.get("/metrics")).body.decode()
    labels = 'function="fn",namespace="tests"'
    assert f"kfaas_invocations_total{{{labels}}} 2.0" in metrics
    assert f"kfaas_errors_total{{{labels}}} 1.0" in metrics
    assert f"kfaas_cold_starts_total{{{labels}}} 1.0" in metrics
    assert f"kfaas_concurrent_executions{{{labels}}} 0.0" in metrics
    assert f"kfaas_duration_seconds_count{{{labels}}} 2.0" in metrics
    assert f"kfaas_init_duration_seconds_count{{{labels}}} 1.0" in metrics
    assert "# TYPE kfaas_worker_restarts_total counter" in metrics
    assert (await instance.get("/nope")).status == 404
    too_big = await instance.invoke(raw=b"x" * (6 * 1024 * 1024 + 1))
    assert too_big.status == 413
    assert too_big.headers["x-amzn-ErrorType"] == "RequestTooLargeException"
    assert instance.stop() == 0  # SIGTERM drains and exits cleanly


async def test_private_pipe_can_be_swapped_for_the_runtime_api(start: Starter) -> None:
    app = """
        def handler(e, c):
            if e == "fail":
                raise KeyError("k")
            return [e, c.aws_request_id]
    """
    instance = await start({"app.py": app}, KFAAS_PYTHON_CHANNEL="runtime-api")
    reply = await instance.invoke("hi", headers={"Lambda-Runtime-Aws-Request-Id": "r-1"})
    assert reply.json() == ["hi", "r-1"]
    error = await instance.invoke("fail")
    assert error.function_error and error.json()["errorType"] == "KeyError"
