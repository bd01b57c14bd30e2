"""Answers with the method it saw, and CORS headers of its own that the gateway must drop."""

import json
from typing import Any


def handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return {
        "statusCode": 200,
        "headers": {
            "content-type": "application/json",
            "access-control-allow-origin": "https://handler-chosen.example",
            "Access-Control-Allow-Credentials": "true",
            "x-request-total": "7",
        },
        "body": json.dumps({"method": event["requestContext"]["http"]["method"]}),
    }
