"""Handlers of the framing tests: each answer names the request it belongs to."""

import json
import os


def echo_id(event, context):
    custom = None if context.client_context is None else context.client_context.custom
    return {
        "request_id": context.aws_request_id,
        "event": event,
        "custom": custom,
        "trace": os.environ.get("_X_AMZN_TRACE_ID"),
    }


def web_id(event, context):
    return {
        "statusCode": 200,
        "headers": {
            "content-type": "application/json",
            "x-echo-request-id": context.aws_request_id,
        },
        "cookies": [f"seen={context.aws_request_id}"],
        "body": json.dumps(
            {
                "request_id": context.aws_request_id,
                "rawPath": event["rawPath"],
                "rawQueryString": event["rawQueryString"],
                "headers": event["headers"],
                "cookies": event.get("cookies"),
                "body": event.get("body"),
            }
        ),
    }


def respond(event, context):
    return json.loads(event["body"])["response"]
