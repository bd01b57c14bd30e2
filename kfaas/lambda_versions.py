"""Published versions and aliases (ADR 024): object names, Lambda's rules, the weighted choice.

A version is a `FunctionVersion` named `<function>.<N>`, an alias a `FunctionAlias` named
`<function>.<alias>`; the dot cannot occur in a function name, so both names are unambiguous.
The gateway (publishing, alias operations, routing) and `kfaas dev` apply the same rules through
these functions: which alias names and routing configurations are accepted (refused naming the
parameter, as Lambda's InvalidParameterValueException does), when a publish changes nothing, and
which version an invocation of an alias runs. Pure: the random draw comes in as a number.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Any, Final, NotRequired, TypedDict

from .lambda_shapes import InvalidParameter, ObjectFacts, revision_id
from .names import LATEST, function_arn

# DNS-1123 label (Kubernetes object names) and not all digits (Lambda: that would be a version).
_ALIAS = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_VERSION = re.compile(r"[1-9][0-9]*")
MAX_ALIAS: Final = 63
# Where the number of the last published version is kept on the Function, so numbers are never
# reused after a version is deleted (as in Lambda).
LAST_VERSION_ANNOTATION: Final = "kfaas.dev/last-version"


class RoutingShape(TypedDict):
    AdditionalVersionWeights: dict[str, float]


class AliasConfiguration(TypedDict):
    AliasArn: str
    Name: str
    FunctionVersion: str
    Description: str
    RevisionId: str
    RoutingConfig: NotRequired[RoutingShape]


def version_name(function: str, version: int) -> str:
    return f"{function}.{version}"


def alias_name(function: str, alias: str) -> str:
    check_alias(alias)
    return f"{function}.{alias}"


def check_alias(alias: str) -> None:
    """Lambda's alias rule, narrowed to what a Kubernetes name can hold (a listed difference)."""
    if len(alias) > MAX_ALIAS or not _ALIAS.fullmatch(alias) or alias.isdigit():
        raise InvalidParameter(
            "Name",
            f"Alias name {alias!r} must be lower-case letters, digits and '-' (at most "
            f"{MAX_ALIAS}, starting and ending with a letter or digit), and not only digits",
        )


def parse_version(text: str, parameter: str = "FunctionVersion") -> int:
    """A published version number as clients spell it ("3")."""
    if not _VERSION.fullmatch(text):
        raise InvalidParameter(parameter, f"{parameter} {text!r} must be a published version")
    return int(text)


def next_version(last: str | None) -> int:
    """The number the next publish takes, from the Function's last-version annotation."""
    if last is None:
        return 1
    if not _VERSION.fullmatch(last):
        raise ValueError(f"annotation {LAST_VERSION_ANNOTATION} holds {last!r}, not a number")
    return int(last) + 1


def check_routing(primary: str, weights: Mapping[str, float]) -> None:
    """Lambda's RoutingConfig rules: one other published version, weight in [0, 1]."""
    if not weights:
        return
    if primary == LATEST:
        raise InvalidParameter("RoutingConfig", "$LATEST is not supported for weighted aliases")
    if len(weights) > 1:
        raise InvalidParameter(
            "RoutingConfig", "AdditionalVersionWeights holds at most one version"
        )
    ((version, weight),) = weights.items()
    parse_version(version, "RoutingConfig")
    if version == primary:
        raise InvalidParameter(
            "RoutingConfig", f"version {version} is already the alias's FunctionVersion"
        )
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 <= weight <= 1:
        raise InvalidParameter("RoutingConfig", f"weight {weight!r} must be between 0.0 and 1.0")


def choose_version(primary: str, weights: Mapping[str, float], draw: float) -> str:
    """The version an invocation of the alias runs, for a uniform `draw` in [0, 1)."""
    for version, weight in weights.items():
        if draw < weight:
            return version
    return primary


def config_sha256(template: Mapping[str, Any], description: str = "") -> str:
    """What a published version freezes, as one digest: equal digests mean nothing changed.

    `template` is the spec as JSON (camelCase, code pinned by digest); keys are sorted, so the
    digest does not depend on the order a writer used.
    """
    canonical = json.dumps(
        {"spec": template, "description": description},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def alias_configuration(
    namespace: str,
    function: str,
    alias: str,
    *,
    primary: str,
    weights: Mapping[str, float],
    facts: ObjectFacts,
    region: str,
    description: str = "",
) -> AliasConfiguration:
    """GetAlias's answer (also CreateAlias', UpdateAlias' and each entry of ListAliases)."""
    configuration: AliasConfiguration = {
        "AliasArn": function_arn(namespace, function, region=region, qualifier=alias),
        "Name": alias,
        "FunctionVersion": primary,
        "Description": description,
        "RevisionId": revision_id(facts.uid, facts.generation),
    }
    if weights:
        configuration["RoutingConfig"] = {
            "AdditionalVersionWeights": {v: float(w) for v, w in weights.items()}
        }
    return configuration
