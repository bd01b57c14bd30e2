"""What HTTP trigger auth costs: one no-op trigger with auth NONE, API_KEY and JWT, side by side.

One `kfaas dev` serves four copies of a no-op function (one warm instance each, 16 workers) with
``http.auth`` NONE, API_KEY (10 keys in a file), JWT RS256 and JWT ES256 (keys from a JWKS served on
127.0.0.1, fetched once). One aiohttp client sends the same GET to each in turn; the table gives
p50/p99 latency and throughput per row, and each authorizer's p50 overhead over NONE. The pure
checks (no HTTP) are timed too, for the share of the overhead that is verification.

Run: `.venv/bin/python bench/trigger_auth.py` (about 30 s; `--requests`, `--concurrency`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import threading
import time
import timeit
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import yaml

sys.path.insert(0, str(Path(__file__).parent.parent / "tests"))
from devserver import dev_server
from security.jwt_keys import AUDIENCE, ISSUER, Keys, es256, rs256

from kfaas.gateway.trigger_tokens import api_key_matches, load_key_set, verify_token

NOOP = "def handler(event, context):\n    return {'statusCode': 200, 'body': 'ok'}\n"
API_KEYS = [f"bench-key-{index:02d}-7c1f0b9e" for index in range(10)]
ROUNDS = 6


def serve_jwks(document: dict[str, Any]) -> tuple[str, ThreadingHTTPServer]:
    body = json.dumps(document).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/jwks.json", server


def function(name: str, **http: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kfaas.dev/v1alpha1",
        "kind": "Function",
        "metadata": {"name": name},
        "spec": {
            "runtime": "python3.11",
            "handler": "app.handler",
            "code": {"inline": {"app.py": NOOP}},
            "concurrency": {"perInstance": 16},
            "scaling": {"minInstances": 1, "maxInstances": 1},
            "http": {"enabled": True, **http},
        },
    }


async def load(url: str, headers: dict[str, str], concurrency: int, total: int) -> list[float]:
    latencies: list[float] = []
    async with aiohttp.ClientSession() as session:

        async def worker(count: int) -> None:
            for _ in range(count):
                started = time.perf_counter()
                async with session.get(url, headers=headers) as reply:
                    await reply.read()
                    assert reply.status == 200, reply.status
                latencies.append(time.perf_counter() - started)

        for _ in range(20):  # warm-up: connections, the JWKS fetch
            async with session.get(url, headers=headers) as reply:
                await reply.read()
        share = total // concurrency
        started = time.perf_counter()
        await asyncio.gather(*(worker(share) for _ in range(concurrency)))
        latencies.append(-(time.perf_counter() - started))  # total wall time, marked negative
    return latencies


def pure(keys: Keys) -> list[tuple[str, float]]:
    key_set = load_key_set([json.dumps(keys.jwks())])
    rs, es = rs256(keys.rsa), es256(keys.ec)
    rows: list[tuple[str, Callable[[], object]]] = [
        ("API key, 10 keys", lambda: api_key_matches(API_KEYS[-1], API_KEYS)),
        (
            "JWT RS256 verify",
            lambda: verify_token(rs, key_set, issuer=ISSUER, audiences=[AUDIENCE]),
        ),
        (
            "JWT ES256 verify",
            lambda: verify_token(es, key_set, issuer=ISSUER, audiences=[AUDIENCE]),
        ),
    ]
    return [(name, timeit.timeit(check, number=2000) / 2000 * 1e6) for name, check in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    keys = Keys.generate()
    jwks_url, jwks = serve_jwks(keys.jwks())
    jwt = {"issuer": ISSUER, "audiences": [AUDIENCE], "jwksUrl": jwks_url}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        (root / "keys.txt").write_text("\n".join(API_KEYS) + "\n")
        docs = [
            function("open"),
            function("keyed", auth="API_KEY", apiKey={"file": "keys.txt"}),
            function("rs256", auth="JWT", jwt=jwt),
            function("es256", auth="JWT", jwt=jwt),
        ]
        (root / "functions.yaml").write_text(yaml.safe_dump_all(docs))
        rows = [
            ("NONE", "open", {}),
            ("API_KEY", "keyed", {"x-api-key": API_KEYS[-1]}),
            ("JWT RS256", "rs256", {"authorization": f"Bearer {rs256(keys.rsa)}"}),
            ("JWT ES256", "es256", {"authorization": f"Bearer {es256(keys.ec)}"}),
        ]
        print(
            f"{platform.node()}, Python {platform.python_version()}, {args.requests} requests/row"
        )
        print("| auth | concurrency | p50 ms | p99 ms | req/s | p50 over NONE |")
        print("| --- | --- | --- | --- | --- | --- |")
        with dev_server([root]) as dev:
            for concurrency in args.concurrency:
                # Rows interleaved in rounds, so load from elsewhere on the machine hits them alike.
                samples: dict[str, list[float]] = {label: [] for label, _, _ in rows}
                walls = dict.fromkeys(samples, 0.0)
                for _ in range(ROUNDS):
                    for label, name, headers in rows:
                        url = f"{dev.url}/fn/default/{name}/"
                        got = asyncio.run(load(url, headers, concurrency, args.requests // ROUNDS))
                        walls[label] += -got.pop()
                        samples[label] += got
                baseline = statistics.median(samples["NONE"]) * 1e3
                for label, got in samples.items():
                    p50, p99 = (
                        statistics.median(got) * 1e3,
                        statistics.quantiles(got, n=100)[98] * 1e3,
                    )
                    print(
                        f"| {label} | {concurrency} | {p50:.3f} | {p99:.3f} | "
                        f"{len(got) / walls[label]:.0f} | {p50 - baseline:+.3f} ms |"
                    )
    jwks.shutdown()
    print()
    print("| pure check | µs each |")
    print("| --- | --- |")
    for name, micros in pure(keys):
        print(f"| {name} | {micros:.1f} |")


if __name__ == "__main__":
    main()
