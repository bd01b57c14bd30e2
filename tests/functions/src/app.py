"""Handlers the end-to-end tests invoke through the gateway."""

import json
import os
import sys
import time


def echo(event, context):
    return event


def context_info(event, context):
    return {
        "function_name": context.function_name,
        "function_version": context.function_version,
        "invoked_function_arn": context.invoked_function_arn,
        "memory_limit_in_mb": context.memory_limit_in_mb,
        "aws_request_id": context.aws_request_id,
        "log_group_name": context.log_group_name,
        "log_stream_name": context.log_stream_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "client_context": None
        if context.client_context is None
        else {"custom": context.client_context.custom, "env": context.client_context.env},
        "trace_id": os.environ.get("_X_AMZN_TRACE_ID"),
        "traceparent": os.environ.get("TRACEPARENT"),
        "env": {k: os.environ.get(k) for k in ("GREETING", "AWS_REGION", "TZ", "_HANDLER")},
    }


def fail(event, context):
    raise ValueError(f"bad input: {json.dumps(event)}")


def sleep(event, context):
    time.sleep(float(event.get("seconds", 0.2)))
    print("slept", event.get("seconds"))
    return {"pid": os.getpid(), "slept": event.get("seconds", 0.2)}


def chatty(event, context):
    line = "x" * 1023
    for _ in range(int(event.get("kilobytes", 2048))):
        print(line)
    print("the end")
    return {"ok": True}


def crash(event, context):
    os._exit(3)


def unserializable(event, context):
    return {"when": object()}


def big_response(event, context):
    return "y" * (7 * 1024 * 1024)


def http(event, context):
    return {
        "statusCode": 201,
        "headers": {"content-type": "application/json", "x-path": event["rawPath"]},
        "cookies": ["a=1; Path=/", "b=2"],
        "body": json.dumps(
            {
                "rawPath": event["rawPath"],
                "method": event["requestContext"]["http"]["method"],
                "query": event.get("queryStringParameters"),
                "body": event.get("body"),
                "isBase64Encoded": event.get("isBase64Encoded"),
            }
        ),
    }


def plain_json(event, context):
    return {"hello": "world"}


def flaky_logger(event, context):
    print("attempt", file=sys.stderr)
    raise RuntimeError("always fails")


def hog(event, context):
    blocks = []
    while True:
        blocks.append(bytearray(16 * 1024 * 1024))
