"""Raw HTTP/1.1 requests for the fuzz suite: the Invoke API, HTTP triggers and a runtime's /invoke.

A seeded ``random.Random`` mixes the hypothesis pool (``fuzz_strategies``) with hostile constants
into request bytes, never through an HTTP library, so anything a socket can carry is possible:
CR/LF/NUL in names and values, obs-fold, non-Latin-1 bytes, huge headers, conflicting framing.
Each request says whether it is *framed* (one complete, well-delimited request: it must get an
answer) or *malformed* (the client half-closes after it: an answer or a close are both fine), and,
for calls the echo functions answer, what they must answer — a different payload or id would be
another caller's response.
"""

from __future__ import annotations

import base64
import json
import random
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from security.fuzz_hostile import (
    BAD_FRAMING,
    BAD_TRACE_IDS,
    HOSTILE_NAMES,
    HOSTILE_VALUES,
    METHODS,
    REQUEST_LINES,
    valid_field,
    valid_request_line,
)

INVOKE = "/2015-03-31/functions"
SYNC_LIMIT = 6 * 1024 * 1024
ASYNC_LIMIT = 1024 * 1024


@dataclass(frozen=True)
class FuzzRequest:
    target: str  # "invoke" | "trigger" | "runtime" (which listener it goes to)
    data: bytes
    malformed: bool
    head: bool = False  # a HEAD answer has no body whatever its Content-Length says
    echo: str | None = None  # canonical JSON the echo function must answer with (200)
    fuzz_id: str | None = None  # id the trigger function must answer with (200)
    function_status: int | None = None  # the status the reflect function answers with


def canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


class Mixer:
    """Builds requests from the pool; ``token`` is the runtime token, when instances want one."""

    def __init__(self, pool: dict[str, list[Any]], seed: int, runtime_token: str | None) -> None:
        self.pool = pool
        self.random = random.Random(seed)
        self.runtime_token = runtime_token
        self.count = 0

    def pick(self, kind: str) -> Any:
        return self.random.choice(self.pool[kind])

    def chance(self, probability: float) -> bool:
        return self.random.random() < probability

    def requests(self, total: int, weights: dict[str, float]) -> Iterator[FuzzRequest]:
        builders = {
            "invoke": self.invoke,
            "trigger": self.trigger,
            "runtime": self.runtime,
            "garbage": self.garbage,
        }
        names = list(weights)
        for _ in range(total):
            self.count += 1
            yield builders[self.random.choices(names, [weights[n] for n in names])[0]]()

    # -- pieces --------------------------------------------------------------------------

    def value(self) -> bytes:
        roll = self.random.random()
        if roll < 0.45:
            return str(self.pick("text")).encode("utf-8", "surrogatepass")
        if roll < 0.65:
            return str(self.pick("latin1")).encode("latin-1")
        if roll < 0.8:
            return bytes(self.pick("bytes"))
        if roll < 0.9:
            return str(self.pick("token")).encode()
        return self.random.choice(HOSTILE_VALUES)

    def name(self) -> bytes:
        if self.chance(0.9):
            return str(self.pick("token")).encode()
        return self.random.choice(HOSTILE_NAMES)

    def extra_headers(self) -> list[tuple[bytes, bytes]]:
        headers = [(self.name(), self.value()) for _ in range(self.random.choice([0, 0, 1, 2, 5]))]
        if self.chance(0.03):  # the interim 100 answer must be followed by exactly one final one
            headers.append((b"Expect", b"100-continue"))
        if self.chance(0.03):
            headers.append(
                (b"Connection", self.random.choice([b"close", b"keep-alive", b"Upgrade"]))
            )
        return headers

    def segment(self) -> str:
        text = str(self.pick("segment"))
        return text if self.chance(0.3) else urllib.parse.quote(text, safe="")

    def query(self) -> str:
        if self.chance(0.5):
            return ""
        pairs = [self.pick("query_pair") for _ in range(self.random.randint(1, 4))]
        if self.chance(0.5):
            return "?" + urllib.parse.urlencode(pairs)
        return "?" + "&".join(f"{k}={v}" for k, v in pairs)

    def json_body(self) -> tuple[bytes, str | None]:
        """A body, and its canonical JSON when it is valid JSON the echo function returns."""
        roll = self.random.random()
        if roll < 0.55:
            text = str(self.pick("json_text"))
            return text.encode("utf-8", "surrogatepass"), canonical(json.loads(text))
        if roll < 0.62:
            return b"", canonical({})
        if roll < 0.72:
            return bytes(self.pick("bytes")), None
        if roll < 0.77:
            return b'{"a": "\xff\xfe"}', None
        if roll < 0.8:
            depth = self.random.choice([100] * 4 + [1000] * 3 + [10_000] * 2 + [100_000])
            opener, closer = self.random.choice([(b"[", b"]"), (b'{"a":', b"}")])
            return opener * depth + b"1" + closer * depth, None
        if roll < 0.9995:
            number = self.pick("number")
            return json.dumps({"n": number, "s": self.pick("text")}).encode(), None
        size = self.random.choice(
            [ASYNC_LIMIT - 20, ASYNC_LIMIT + 1, SYNC_LIMIT - 20, SYNC_LIMIT + 1]
        )
        if self.chance(0.2):  # a valid JSON document nested a million deep, within the limit
            return b"[" * 1_000_000 + b"]" * 1_000_000, None
        return b'"' + b"x" * (size - 2) + b'"', None

    def assemble(
        self,
        line: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        *,
        framing_ok: bool = True,
    ) -> tuple[bytes, bool]:
        """Request bytes, and whether they are malformed (header bytes or framing)."""
        malformed = (
            not framing_ok
            or not valid_request_line(line)
            or not all(valid_field(name, value) for name, value in headers)
        )
        lines = [line] + [name + b": " + value for name, value in headers]
        if self.chance(0.03):
            lines.extend(self.random.choice(BAD_FRAMING))
            malformed = True
            lines.append(b"Content-Length: " + str(len(body)).encode())
            payload = body
        elif body and self.chance(0.1):
            lines.append(b"Transfer-Encoding: chunked")
            cut = self.random.randint(0, len(body))
            chunks = [part for part in (body[:cut], body[cut:]) if part]
            payload = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
        else:
            lines.append(b"Content-Length: " + str(len(body)).encode())
            payload = body
        return b"\r\n".join(lines) + b"\r\n\r\n" + payload, malformed

    # -- targets ---------------------------------------------------------------------------

    def invoke(self) -> FuzzRequest:
        method = "POST" if self.chance(0.85) else self.random.choice(METHODS)
        function = "echo"
        roll = self.random.random()
        if roll < 0.1:
            function = self.random.choice(
                ["default%2Fecho", "arn:aws:lambda:us-east-1:000000000000:function:echo", "web"]
            )
        elif roll < 0.25:
            function = self.segment() if self.chance(0.9) else "e" * 10_000
        tail = "/invocations" if self.chance(0.9) else "/" + self.segment()
        if self.chance(0.05):
            tail = "/configuration" if self.chance(0.5) else ""
            method = "GET"
        if method in ("PUT", "DELETE", "PATCH"):
            # The management API's writes are real (kfaas dev's --auth none lets anyone delete):
            # aimed at the sentinel's function, a DeleteFunction would take it away, a correct
            # answer that the sentinel would count as a failure. They go to a function no one uses.
            function = "fuzz-writes"
        path = f"{INVOKE}/{function}{tail}{self.query()}"
        headers: list[tuple[bytes, bytes]] = [(b"Host", b"127.0.0.1")]
        invocation = self.random.choice(["", "", "", "RequestResponse", "Event", "DryRun", "Other"])
        if invocation:
            headers.append((b"X-Amz-Invocation-Type", invocation.encode()))
        if self.chance(0.3):
            headers.append((b"X-Amz-Log-Type", b"Tail" if self.chance(0.7) else self.value()))
        if self.chance(0.3):
            headers.append((b"X-Amz-Client-Context", self.client_context()))
        if self.chance(0.2):
            trace = self.random.choice(BAD_TRACE_IDS) if self.chance(0.5) else self.pick("text")
            headers.append((b"X-Amzn-Trace-Id", str(trace).encode("utf-8", "surrogatepass")))
        if self.chance(0.1):
            headers.append((b"traceparent", self.value()))
        headers += self.extra_headers()
        body, echo = self.json_body()
        data, malformed = self.assemble(
            f"{method} {path} HTTP/1.1".encode("utf-8", "surrogatepass"), headers, body
        )
        exact = function == "echo" and tail == "/invocations" and method == "POST"
        exact = exact and "Qualifier" not in path
        return FuzzRequest(
            "invoke",
            data,
            malformed,
            head=method == "HEAD",
            echo=echo if exact and invocation in ("", "RequestResponse") else None,
        )

    def client_context(self) -> bytes:
        roll = self.random.random()
        if roll < 0.4:
            text = str(self.pick("json_text")).encode("utf-8", "surrogatepass")
        elif roll < 0.55:
            text = b"{}" + b"\r\n" * self.random.randint(1, 4) + b" " * self.random.randint(0, 20)
        elif roll < 0.7:
            text = '{"custom":{"user":"日本"}}'.encode()
        elif roll < 0.85:
            text = bytes(self.pick("bytes"))
        else:
            return self.value()
        encoded = base64.b64encode(text)
        return encoded if self.chance(0.95) else encoded + b"\xff="

    def trigger(self) -> FuzzRequest:
        method = self.random.choice(METHODS[:7]) if self.chance(0.9) else str(self.pick("token"))
        function = self.random.choice(["web", "web", "web", "reflect", "echo", "missing"])
        namespace = "default" if self.chance(0.95) else self.segment()
        suffix = "".join("/" + self.segment() for _ in range(self.random.choice([0, 1, 1, 2, 4])))
        path = f"/fn/{namespace}/{function}{suffix}{self.query()}"
        fuzz_id = f"id-{self.count}"
        headers: list[tuple[bytes, bytes]] = [
            (b"Host", b"127.0.0.1"),
            (b"X-Fuzz-Id", fuzz_id.encode()),
        ]
        status = None
        if function == "reflect":
            status = self.random.choice([200, 204, 302, 404, 500, 503, self.pick("number")])
            headers.append((b"X-Reflect-Status", str(status).encode()))
            framing = [b"Content-Length", b"Transfer-Encoding", b"Connection", b"Upgrade", b"TE"]
            for _ in range(2):
                name = self.random.choice(framing) if self.chance(0.3) else self.name()
                headers.append((b"X-Reflect-" + name, self.value()))
        if self.chance(0.2):
            headers.append((b"Cookie", self.value()))
        headers += self.extra_headers()
        body = bytes(self.pick("bytes")) if self.chance(0.7) else self.json_body()[0]
        data, malformed = self.assemble(
            f"{method} {path} HTTP/1.1".encode("utf-8", "surrogatepass"), headers, body
        )
        check = fuzz_id if function == "web" and namespace == "default" else None
        return FuzzRequest(
            "trigger", data, malformed, method == "HEAD", fuzz_id=check, function_status=status
        )

    def runtime(self) -> FuzzRequest:
        roll = self.random.random()
        method, path = "POST", "/invoke"
        if roll < 0.05:
            method, path = "GET", self.random.choice(["/healthz", "/metrics"])
        elif roll < 0.1:
            method, path = self.random.choice(METHODS), "/" + self.segment()
        headers: list[tuple[bytes, bytes]] = [(b"Host", b"127.0.0.1")]
        if self.runtime_token is not None and self.chance(0.9):
            headers.append((b"X-Kfaas-Runtime-Token", self.runtime_token.encode()))
        for name in [
            b"Lambda-Runtime-Aws-Request-Id",
            b"Lambda-Runtime-Client-Context",
            b"Lambda-Runtime-Trace-Id",
            b"Lambda-Runtime-Cognito-Identity",
            b"Lambda-Runtime-Invoked-Function-Arn",
            b"traceparent",
            b"X-Amz-Log-Type",
        ]:
            if self.chance(0.25):
                headers.append((name, self.value()))
        headers += self.extra_headers()
        body, echo = self.json_body()
        data, malformed = self.assemble(f"{method} {path} HTTP/1.1".encode(), headers, body)
        # An empty body reaches the handler as None here (the gateway turns it into {}).
        echo = echo if path == "/invoke" and body else None
        return FuzzRequest("runtime", data, malformed, echo=echo)

    def garbage(self) -> FuzzRequest:
        line = self.random.choice(REQUEST_LINES) if self.chance(0.6) else bytes(self.pick("bytes"))
        headers = [(self.name(), self.value()) for _ in range(self.random.randint(0, 3))]
        data, _ = self.assemble(line, headers, bytes(self.pick("bytes")), framing_ok=False)
        if self.chance(0.3):
            data = data.replace(b"\r\n", b"\n")
        target = "runtime" if self.chance(0.3) else self.random.choice(["invoke", "trigger"])
        return FuzzRequest(target, data, True)
