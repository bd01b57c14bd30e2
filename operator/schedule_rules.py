"""The Schedule kind's model validators as CEL (ADR 026), for the CRD that ``crdgen`` renders.

CEL can say of a schedule expression its kind and its shape, not the rest: a cron field's ranges
and its `?`/`L`/`W`/`#` rules, a date that exists in `at(...)`, a time zone that exists, a
target input that is JSON. Those need the parser of ``kfaas.schedule_expressions``: `kfaas dev`
refuses such a manifest when it loads it, and in a cluster the scheduler reports it in the
Schedule's status (its state and message) and fires nothing. Each regex here accepts at least
what the parser accepts (tests/operator/test_crds.py), so the API server never refuses a schedule
that `kfaas dev` runs. Each rule names the field it is about (``fieldPath``), so the API server's
refusal reads `spec.scheduleExpression: Invalid value: …`.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel

from kfaas.schedule_manifests import FlexibleTimeWindow, ScheduleSpec

# What any expression looks like, then each kind's shape (`second` is kfaas's extension of rate).
EXPRESSION_KINDS: Final = r"^(rate|cron|at)\([\s\S]*\)$"
EXPRESSION_SHAPES: Final = {
    "rate": r"^rate\([0-9]+ +(second|minute|hour|day)s?\)$",
    "cron": r"^cron\(\s*\S+(\s+\S+){5}\s*\)$",
    "at": r"^at\([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\)$",
}
# An IANA name's characters (Europe/Paris, Etc/GMT+5, America/Port-au-Prince, UTC).
TIME_ZONE_SHAPE: Final = r"^[A-Za-z][A-Za-z0-9_+\-/]*$"
FORMS: Final = {
    "rate": "rate(value unit)",
    "cron": "cron(minutes hours day-of-month month day-of-week year)",
    "at": "at(yyyy-mm-ddThh:mm:ss)",
}


def _matches(field: str, regex: str) -> str:
    """``self.FIELD.matches('REGEX')``, the regex's backslashes escaped for a CEL string."""
    escaped = regex.replace("\\", "\\\\")
    return f"self.{field}.matches('{escaped}')"


def _expression_rules() -> list[dict[str, str]]:
    where = {"fieldPath": ".scheduleExpression"}
    rules = [
        {
            "rule": _matches("scheduleExpression", EXPRESSION_KINDS),
            "message": "must be " + ", ".join(FORMS.values()),
            **where,
        }
    ]
    for kind, regex in EXPRESSION_SHAPES.items():
        rules.append(
            {
                "rule": f"!self.scheduleExpression.startsWith('{kind}(') || "
                + _matches("scheduleExpression", regex),
                "message": f"must be {FORMS[kind]}",
                **where,
            }
        )
    return rules


SCHEDULE_RULES: Final[dict[type[BaseModel], list[dict[str, str]]]] = {
    FlexibleTimeWindow: [
        {
            "rule": "self.mode != 'FLEXIBLE' || has(self.maximumWindowInMinutes)",
            "message": "mode FLEXIBLE requires maximumWindowInMinutes",
            "fieldPath": ".maximumWindowInMinutes",
        },
        {
            "rule": "self.mode == 'FLEXIBLE' || !has(self.maximumWindowInMinutes)",
            "message": "maximumWindowInMinutes is only used with mode FLEXIBLE",
            "fieldPath": ".maximumWindowInMinutes",
        },
    ],
    ScheduleSpec: [
        *_expression_rules(),
        {
            "rule": _matches("scheduleExpressionTimezone", TIME_ZONE_SHAPE),
            "message": "must be an IANA time zone name such as Europe/Paris",
            "fieldPath": ".scheduleExpressionTimezone",
        },
        {
            # The models' DateTime is RFC 3339, which CEL's timestamp() reads.
            "rule": "!has(self.startDate) || !has(self.endDate) "
            "|| timestamp(self.endDate) > timestamp(self.startDate)",
            "message": "endDate must be after startDate",
            "fieldPath": ".endDate",
        },
    ],
}
