"""What Invoke API authentication costs: the SigV4 check alone, and a signed invoke end to end.

(1) The verifier (`parse_claim`, `check_time`, `verify`) on a request boto3 signed, with a 1 KB
body, in a loop: microseconds per request. (2) `kfaas dev` over tests/functions with `--auth none`
and with `--credentials` (a rule allowing everything): 400 sequential boto3 invokes of `echo`
after 50 warm-up calls, the same signing client both times, latency percentiles.

Run: .venv/bin/python bench/invoke_auth.py
"""

from __future__ import annotations

import contextlib
import datetime
import json
import platform
import statistics
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
import boto3
from botocore.awsrequest import AWSRequest
from botocore.config import Config
from devserver import dev_server

from kfaas.gateway import sigv4 as verifier

FUNCTIONS = Path(__file__).parent.parent / "tests" / "functions"
KEY, SECRET = "AKIDBENCH", "bench-secret"


def client(url: str) -> Any:
    return boto3.client(
        "lambda", endpoint_url=url, region_name="us-east-1", aws_access_key_id=KEY,
        aws_secret_access_key=SECRET, config=Config(retries={"max_attempts": 0}),
    )  # fmt: skip


def verifier_cost(rounds: int = 20000) -> float:
    lam = client("http://127.0.0.1:8080")
    seen: list[AWSRequest] = []

    def capture(request: AWSRequest, **_: Any) -> Any:
        seen.append(request)
        raise RuntimeError("captured")

    lam.meta.events.register("before-send.lambda", capture)
    body = json.dumps({"pad": "x" * 1000}).encode()
    with contextlib.suppress(RuntimeError):
        lam.invoke(FunctionName="team-a/echo", Payload=body)
    request = seen[0]
    parts = urllib.parse.urlsplit(request.url)
    headers = [(k, v.decode() if isinstance(v, bytes) else v) for k, v in request.headers.items()]
    signed = verifier.SignedRequest(
        "POST", parts.path, parts.query, [*headers, ("Host", parts.netloc)]
    )
    now = datetime.datetime.now(datetime.UTC)
    started = time.perf_counter()
    for _ in range(rounds):
        claim = verifier.parse_claim(signed)
        assert claim is not None
        verifier.check_time(claim, now)
        verifier.verify(signed, claim, SECRET, body)
    return (time.perf_counter() - started) / rounds * 1e6


def latencies(url: str, calls: int = 400) -> list[float]:
    lam = client(url)
    for _ in range(50):
        lam.invoke(FunctionName="echo", Payload=b'{"k": 1}')
    seconds = []
    for _ in range(calls):
        started = time.perf_counter()
        answer = lam.invoke(FunctionName="echo", Payload=b'{"k": 1}')
        answer["Payload"].read()
        seconds.append(time.perf_counter() - started)
    return seconds


def main() -> None:
    print(f"python {platform.python_version()}, {platform.machine()}")
    print(f"verifier: {verifier_cost():.1f} us per signed request (1 KB body)\n")
    credentials = Path(tempfile.mkdtemp()) / "credentials.yaml"
    credentials.write_text(json.dumps({
        "credentials": [{"accessKeyId": KEY, "secretAccessKey": SECRET, "user": "bench"}],
        "rules": [{"users": ["bench"], "namespaces": ["*"], "verbs": ["*"]}],
    }))  # fmt: skip
    print("| auth | p50 ms | p90 ms | p99 ms | calls/s (sequential) |")
    print("| --- | --- | --- | --- | --- |")
    for mode, args in (("none", []), ("sigv4", ["--credentials", str(credentials)])):
        with dev_server([FUNCTIONS], args=args) as dev:
            seconds = latencies(dev.url)
        cuts = statistics.quantiles(seconds, n=100)
        print(
            f"| {mode} | {cuts[49] * 1000:.2f} | {cuts[89] * 1000:.2f} | {cuts[98] * 1000:.2f} | "
            f"{len(seconds) / sum(seconds):.0f} |"
        )


if __name__ == "__main__":
    main()
