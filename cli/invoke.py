"""`kfaas invoke`: call a function through a gateway's Lambda Invoke API, as the AWS CLI would.

Signed with SigV4 when AWS keys are in the environment (read in ``cli.settings``), for a gateway
with ``--auth sigv4``; only the standard library's HTTP client, so the command starts fast.
"""

from __future__ import annotations

import argparse
import base64
import json
import sys
import urllib.error
import urllib.parse
import urllib.request

from kfaas import sigv4

from .settings import invoke_settings


def invoke(args: argparse.Namespace) -> int:
    """Invoke a function through the gateway and print its answer (exit 1 on a function error)."""
    try:
        json.loads(args.payload)
    except ValueError as exc:
        print(f"kfaas invoke: --payload is not valid JSON: {exc}", file=sys.stderr)
        return 2
    invoke = invoke_settings(args.endpoint)
    name = urllib.parse.quote(args.name, safe="")
    url = f"{invoke.endpoint.rstrip('/')}/2015-03-31/functions/{name}/invocations"
    payload = args.payload.encode()
    sent = {
        "Content-Type": "application/json",
        "X-Amz-Invocation-Type": "Event" if args.event else "RequestResponse",
        "X-Amz-Log-Type": "Tail" if args.tail and not args.event else "None",
    }
    if invoke.credentials is not None:
        # Signed like the AWS CLI signs, for a gateway with --auth sigv4 (ignored by --auth none).
        # The Host signed is sent as is: urllib then adds none of its own.
        sent = sigv4.sign("POST", url, sent, payload, invoke.credentials, region=invoke.region)
    request = urllib.request.Request(url, data=payload, method="POST", headers=sent)
    try:
        with urllib.request.urlopen(request, timeout=960) as reply:
            body = reply.read()
            headers = reply.headers
    except urllib.error.HTTPError as error:
        detail = error.read().decode(errors="replace")
        print(
            f"kfaas invoke: {error.code} {error.headers.get('x-amzn-ErrorType')}: {detail}",
            file=sys.stderr,
        )
        return 2
    except urllib.error.URLError as error:
        print(f"kfaas invoke: cannot reach {invoke.endpoint}: {error.reason}", file=sys.stderr)
        return 2
    if args.tail and headers.get("X-Amz-Log-Result"):
        sys.stderr.write(base64.b64decode(headers["X-Amz-Log-Result"]).decode(errors="replace"))
    if args.event:
        print(f"accepted: {headers.get('x-amzn-RequestId')}")
        return 0
    sys.stdout.write(body.decode(errors="replace") + "\n")
    return 1 if headers.get("X-Amz-Function-Error") else 0
