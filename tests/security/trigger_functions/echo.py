"""Answers with what the trigger told the handler about the caller: its requestContext."""

import json


def handler(event, context):
    return {
        "statusCode": 200,
        "headers": {"content-type": "application/json"},
        "body": json.dumps({"requestContext": event["requestContext"], "body": event.get("body")}),
    }
