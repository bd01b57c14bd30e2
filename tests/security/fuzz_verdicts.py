"""Verdicts of the fuzz suite: which answers are failures, and the report a run prints.

Pure functions over what the raw client read (``fuzz_client.Answer``) and what was sent
(``fuzz_requests.FuzzRequest``), kept apart from the test so the rules read in one place and are
unit-tested without a server (``test_fuzz.test_judge_tells_documented_errors_from_failures``).
"""

from __future__ import annotations

import json
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from security.fuzz_client import Answer
from security.fuzz_requests import FuzzRequest, canonical
from security.fuzz_strategies import SEED

EXAMPLES_KEPT = 3
# A malformed request is the client's error: warning level, rate-limited, never an error record.
GATEWAY_LOGGERS = ("aiohttp", "asyncio", "kfaas.gateway", "kfaas.dev", "kfaas.local")


def judge(request: FuzzRequest, answer: Answer) -> str | None:
    """The failure this answer shows, or None."""
    if answer.outcome == "timeout":
        return "no answer (hang)"
    if answer.outcome == "garbled":
        return "garbled answer"
    if answer.outcome == "closed":
        return None if request.malformed else "complete request closed without an answer"
    status = answer.status
    if status >= 500:
        error_type = answer.headers.get("x-amzn-errortype", "")
        chosen = status == request.function_status and not error_type  # the function's own
        documented = (
            chosen
            or (request.target == "trigger" and status == 502)
            or (
                request.target == "invoke"
                and status == 502
                and error_type.startswith("ResourceNotReady")
            )
        )
        return None if documented else f"{status} {error_type}".strip()
    if status != 200 or request.head or "x-amz-function-error" in answer.headers:
        return None
    if request.malformed:  # the server may see other requests in these bytes than we meant
        return None
    try:
        if request.echo is not None and canonical(json.loads(answer.body)) != request.echo:
            return "another caller's answer (echo payload differs)"
        if request.fuzz_id is not None and json.loads(answer.body).get("id") != request.fuzz_id:
            return "another caller's answer (trigger id differs)"
    except (ValueError, AttributeError, RecursionError):
        return "another caller's answer (not the JSON sent)"
    return None


@dataclass
class Report:
    statuses: Counter[tuple[str, str]] = field(default_factory=Counter)
    failures: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=dict)
    sentinel: Counter[str] = field(default_factory=Counter)
    sentinel_ms: list[float] = field(default_factory=list)
    rss: dict[str, int] = field(default_factory=dict)

    def record(self, index: int, request: FuzzRequest, answer: Answer) -> None:
        outcome = str(answer.status) if answer.outcome == "answered" else answer.outcome
        self.statuses[(request.target, outcome)] += 1
        failure = judge(request, answer)
        if failure is None:
            return
        self.failures[failure] += 1
        kept = self.examples.setdefault(failure, [])
        if len(kept) < EXAMPLES_KEPT:
            shown = request.data[:600]
            more = f" (+{len(request.data) - 600} more bytes)" if len(request.data) > 600 else ""
            kept.append(
                f"#{index} {request.target} -> {outcome} {answer.detail} "
                f"{answer.headers.get('x-amzn-errortype', '')} {answer.body[:200]!r}\n"
                f"      request: {shown!r}{more}"
            )

    def summary(self, seconds: float, dev_log: str) -> str:
        lines = [f"{sum(self.statuses.values())} requests in {seconds:.1f}s, seed {SEED}"]
        for target in ("invoke", "trigger", "runtime"):
            row = {o: n for (t, o), n in sorted(self.statuses.items()) if t == target}
            lines.append(f"  {target}: {row}")
        ms = sorted(self.sentinel_ms) or [0.0]
        lines.append(
            f"  sentinel: {dict(self.sentinel)}, p50 {statistics.median(ms):.1f} ms, "
            f"p99 {ms[int(0.99 * (len(ms) - 1))]:.1f} ms"
        )
        mb = {k: round(v / 2**20, 1) for k, v in self.rss.items()}
        levels = Counter(level for level, _ in gateway_log_records(dev_log))
        lines.append(
            f"  dev RSS MB: {mb}; dev log: {len(dev_log.splitlines())} lines, "
            f"gateway records by level {dict(levels)}"
        )
        errors = [message for level, message in gateway_log_records(dev_log) if level == "error"]
        if errors:
            lines.append(f"FAILURE error-level gateway log records: {len(errors)}")
            lines.extend(f"    {_head_and_tail(message)!r}" for message in errors[:EXAMPLES_KEPT])
        for name, examples in self.examples.items():
            if name.startswith("sentinel"):
                lines.append(f"FAILURE {name} did not get its own answer")
                lines.extend(f"    {example}" for example in examples)
        for failure, count in self.failures.most_common():
            lines.append(f"FAILURE {failure}: {count}")
            lines.extend(f"    {example}" for example in self.examples[failure])
        return "\n".join(lines)


def gateway_log_records(dev_log: str) -> Iterator[tuple[str, str]]:
    """(level, message + exception) of what the gateway process itself logged (not functions)."""
    for line in dev_log.splitlines():
        if not line.startswith("{"):
            continue
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("logger", "").startswith(GATEWAY_LOGGERS):
            yield record.get("level", ""), record.get("message", "") + record.get("exception", "")


def _head_and_tail(message: str) -> str:
    """A log record's first line and the end of its traceback, where the exception is named."""
    first = message.split("\n", 1)[0]
    return message if len(message) <= 400 else f"{first} ... {message[-300:]}"
