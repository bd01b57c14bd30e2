"""`runtime: provided`: bootstraps that speak only Lambda's Runtime API, awslambdaric included."""

from __future__ import annotations

import base64
import json
import sys

from runtime.instances import Starter

AWSLAMBDARIC_BOOTSTRAP = f"""#!/bin/sh
exec {sys.executable} -m awslambdaric app.handler
"""

AWSLAMBDARIC_APP = """
import os
print("init via awslambdaric")

def handler(event, context):
    if event.get("fail"):
        raise ValueError("from awslambdaric")
    cc = context.client_context
    return {
        "event": event,
        "request_id": context.aws_request_id,
        "arn": context.invoked_function_arn,
        "function_name": context.function_name,
        "memory": context.memory_limit_in_mb,
        "remaining": context.get_remaining_time_in_millis(),
        "cognito": context.identity.cognito_identity_id,
        "custom": cc.custom if cc else None,
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
    }
"""


async def test_awslambdaric_as_a_provided_bootstrap(start: Starter) -> None:
    files = {"bootstrap": AWSLAMBDARIC_BOOTSTRAP, "app.py": AWSLAMBDARIC_APP}
    instance = await start(files, KFAAS_RUNTIME="provided", _HANDLER="app.handler")
    reply = await instance.invoke(
        {"hello": "world"},
        headers={
            "Lambda-Runtime-Aws-Request-Id": "ric-1",
            "Lambda-Runtime-Trace-Id": "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1",
            "Lambda-Runtime-Client-Context": json.dumps({"custom": {"a": 1}}),
            "Lambda-Runtime-Cognito-Identity": json.dumps({"cognitoIdentityId": "c-1"}),
            "X-Amz-Log-Type": "Tail",
        },
    )
    assert reply.status == 200 and not reply.function_error, reply.body
    result = reply.json()
    assert result["event"] == {"hello": "world"}
    assert result["request_id"] == "ric-1"
    assert result["arn"] == "arn:aws:lambda:us-east-1:tests:function:fn"
    assert result["function_name"] == "fn" and result["memory"] == "128"
    assert 2000 < result["remaining"] <= 3000
    assert result["cognito"] == "c-1" and result["custom"] == {"a": 1}
    assert result["trace"] == "Root=1-5759e988-bd862e3fe1be46a994272793;Sampled=1"
    assert reply.headers["X-Kfaas-Cold-Start"] == "1"
    assert "END RequestId: ric-1" in base64.b64decode(reply.headers["X-Amz-Log-Result"]).decode()

    error = await instance.invoke({"fail": True})
    assert error.function_error
    body = error.json()
    assert body["errorType"] == "ValueError" and body["errorMessage"] == "from awslambdaric"
    assert any("raise ValueError" in frame for frame in body["stackTrace"])
    assert not (await instance.invoke({})).function_error


async def test_awslambdaric_init_error(start: Starter) -> None:
    files = {"bootstrap": AWSLAMBDARIC_BOOTSTRAP, "app.py": "import nope_kfaas_missing\n"}
    instance = await start(files, KFAAS_RUNTIME="provided")
    reply = await instance.invoke({})
    assert reply.function_error
    error = reply.json()
    assert error["errorType"] == "Runtime.ImportModuleError"
    assert error["errorMessage"] == (
        "Unable to import module 'app': No module named 'nope_kfaas_missing'"
    )


# A custom runtime written against the Runtime API with nothing but http.client, as a
# `provided.al2` user would write one. Its behaviour is chosen by the event.
CUSTOM_BOOTSTRAP = f"""#!{sys.executable}
import http.client, json, os
api = os.environ["AWS_LAMBDA_RUNTIME_API"]
base = "/2018-06-01/runtime"
if os.path.exists("fail-init"):
    conn = http.client.HTTPConnection(api)
    conn.request("POST", base + "/init/error", body=json.dumps(
        {{"errorMessage": "cannot start", "errorType": "Custom.InitFailed"}}),
        headers={{"Lambda-Runtime-Function-Error-Type": "Custom.InitFailed"}})
    assert conn.getresponse().status == 202
    raise SystemExit(1)
conn = http.client.HTTPConnection(api)
def call(method, path, body=None, headers=None):
    conn.request(method, base + path, body=body, headers=headers or {{}})
    response = conn.getresponse()
    return response, response.read()
while True:
    response, body = call("GET", "/invocation/next")
    request_id = response.getheader("Lambda-Runtime-Aws-Request-Id")
    event = json.loads(body)
    headers = {{k: response.getheader(k) for k in (
        "Lambda-Runtime-Deadline-Ms", "Lambda-Runtime-Invoked-Function-Arn",
        "Lambda-Runtime-Trace-Id", "Content-Type")}}
    action = event.get("action")
    if action == "error":
        status = call("POST", f"/invocation/{{request_id}}/error",
                      json.dumps({{"errorMessage": "custom failure", "errorType": "Custom.Error"}}),
                      {{"Lambda-Runtime-Function-Error-Type": "Custom.Error"}})[0].status
        assert status == 202
    elif action == "unknown-id":
        wrong = call("POST", "/invocation/not-the-id/response", b"{{}}")
        late_init = call("POST", "/init/error", b"{{}}")
        right = call("POST", f"/invocation/{{request_id}}/response",
                     json.dumps([wrong[0].status, late_init[0].status]))
        assert right[0].status == 202
    elif action == "too-large":
        status = call("POST", f"/invocation/{{request_id}}/response", b"x" * (7 * 1024 * 1024))
        print("response status", status[0].status, status[1].decode(), flush=True)
    else:
        print("custom handling", request_id, flush=True)
        reply = {{"event": event, "headers": headers}}
        status = call("POST", f"/invocation/{{request_id}}/response", json.dumps(reply))[0].status
        assert status == 202
"""


async def test_custom_runtime_over_raw_http(start: Starter) -> None:
    instance = await start({"bootstrap": CUSTOM_BOOTSTRAP}, KFAAS_RUNTIME="provided", _HANDLER="")
    ok = await instance.invoke(
        {"action": "echo"},
        headers={"Lambda-Runtime-Aws-Request-Id": "c-1", "Lambda-Runtime-Trace-Id": "Root=1-a-b"},
    )
    assert not ok.function_error
    result = ok.json()
    assert result["event"] == {"action": "echo"}
    headers = result["headers"]
    assert headers["Content-Type"] == "application/json"
    assert (
        headers["Lambda-Runtime-Invoked-Function-Arn"]
        == "arn:aws:lambda:us-east-1:tests:function:fn"
    )
    assert headers["Lambda-Runtime-Trace-Id"] == "Root=1-a-b"
    assert int(headers["Lambda-Runtime-Deadline-Ms"]) > 1_600_000_000_000  # epoch milliseconds
    assert "c-1\tcustom handling c-1" in instance.log().splitlines()

    error = await instance.invoke({"action": "error"})
    assert error.function_error
    assert error.json() == {"errorMessage": "custom failure", "errorType": "Custom.Error"}

    statuses = await instance.invoke({"action": "unknown-id"})
    assert statuses.json() == [403, 403]  # not the current invocation; init already over

    too_large = await instance.invoke({"action": "too-large"})
    assert too_large.function_error
    assert too_large.json()["errorType"] == "Function.ResponseSizeTooLarge"
    assert not (await instance.invoke({"action": "echo"})).function_error
    assert "response status 413" in instance.log()  # what the bootstrap was told


async def test_custom_runtime_init_error_and_crash_during_init(start: Starter) -> None:
    instance = await start(
        {"bootstrap": CUSTOM_BOOTSTRAP, "fail-init": ""}, KFAAS_RUNTIME="provided", _HANDLER=""
    )
    reply = await instance.invoke({})
    assert reply.function_error
    assert reply.json() == {"errorMessage": "cannot start", "errorType": "Custom.InitFailed"}

    crashing = await start(
        {"bootstrap": "#!/bin/sh\necho starting\nexit 3\n"}, KFAAS_RUNTIME="provided"
    )
    reply = await crashing.invoke({}, headers={"Lambda-Runtime-Aws-Request-Id": "r-9"})
    assert reply.json() == {
        "errorMessage": "RequestId: r-9 Error: Runtime exited with error: exit status 3",
        "errorType": "Runtime.ExitError",
        "stackTrace": [],
    }
