"""Lambda's `SourceAccessConfigurations` of a self-managed Kafka source as the spec's `tls`/`auth`.

Lambda names the credentials of a self-managed Kafka cluster by Secrets Manager ARNs; kfaas keeps
them in Kubernetes Secrets of the mapping's namespace (ADR 027). A `URI` is either an ARN
`arn:aws:secretsmanager:<region>:<account>:secret:<name>` — the Secret is `<name>`, taken as it is
(a copied AWS ARN's random `-AbCdEf` suffix is part of the name) — or the Secret's plain name.
Answers give the ARN form with the namespace as the account, as kfaas's other ARNs do.

    BASIC_AUTH, SASL_SCRAM_256_AUTH,     auth.mechanism (the same names), auth.secretRef: a Secret
    SASL_SCRAM_512_AUTH,                 with `username`/`password`, or `tls.crt`/`tls.key`
    CLIENT_CERTIFICATE_TLS_AUTH
    SERVER_ROOT_CA_CERTIFICATE           tls.caSecretRef: a Secret with `ca.crt`

Any of them turns TLS on, as Lambda connects over TLS (SASL_SSL) whenever it authenticates; a
spec's SCRAM without `tls` (SASL_PLAINTEXT), or TLS with the system's CAs and no credentials,
can be applied as a manifest but has no `SourceAccessConfigurations` of its own. The VPC and
`VIRTUAL_HOST` types (Amazon MQ, Lambda's networking) are refused by name. Pure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from .lambda_shapes import InvalidParameter

PARAMETER: Final = "SourceAccessConfigurations"
AUTH_TYPES: Final = (
    "BASIC_AUTH",
    "SASL_SCRAM_256_AUTH",
    "SASL_SCRAM_512_AUTH",
    "CLIENT_CERTIFICATE_TLS_AUTH",
)
CA_TYPE: Final = "SERVER_ROOT_CA_CERTIFICATE"
_SECRET_ARN: Final = re.compile(r"^arn:aws:secretsmanager:[^:]*:[^:]*:secret:(?P<name>.*)$")
# A Kubernetes Secret's name: a DNS subdomain.
_NAME: Final = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")


def secret_name(uri: Any) -> str:
    """The Secret a URI names (a Secrets Manager ARN or a plain name)."""
    if not isinstance(uri, str) or not uri:
        raise InvalidParameter(PARAMETER, f"{PARAMETER}: each entry needs a URI naming a Secret")
    found = _SECRET_ARN.match(uri)
    name = found.group("name") if found else uri
    if not _NAME.match(name) or len(name) > 253:
        raise InvalidParameter(
            PARAMETER,
            f"{PARAMETER}: URI {uri!r} must name a Kubernetes Secret of the mapping's namespace "
            "(arn:aws:secretsmanager:<region>:<account>:secret:<name>, or <name>; lower-case "
            "letters, digits, '-' and '.')",
        )
    return name


def access_to_spec(configurations: Any) -> dict[str, Any]:
    """The spec's Kafka ``tls`` and ``auth`` (each only if given) for the request's list."""
    if not isinstance(configurations, list):
        raise InvalidParameter(PARAMETER, f"{PARAMETER} must be a list of {{Type, URI}}")
    auth: dict[str, Any] | None = None
    ca: str | None = None
    for entry in configurations:
        if not isinstance(entry, Mapping) or set(entry) - {"Type", "URI"}:
            raise InvalidParameter(PARAMETER, f"{PARAMETER}: each entry is {{Type, URI}}")
        kind = entry.get("Type")
        if kind == CA_TYPE:
            if ca is not None:
                raise InvalidParameter(PARAMETER, f"{PARAMETER}: {CA_TYPE} is given twice")
            ca = secret_name(entry.get("URI"))
        elif kind in AUTH_TYPES:
            if auth is not None:
                raise InvalidParameter(
                    PARAMETER, f"{PARAMETER}: give one authentication type, not several"
                )
            auth = {"mechanism": kind, "secretRef": {"name": secret_name(entry.get("URI"))}}
        else:
            raise InvalidParameter(
                PARAMETER,
                f"{PARAMETER}: Type {kind!r} is not supported by kfaas (it takes "
                f"{', '.join(AUTH_TYPES)} and {CA_TYPE})",
            )
    if auth is None and ca is None:
        return {}
    security: dict[str, Any] = {"tls": {"caSecretRef": {"name": ca}} if ca else {}}
    if auth is not None:
        security["auth"] = auth
    return security


def apply_access(kafka: dict[str, Any], configurations: Any) -> None:
    """Replace a Kafka source's ``tls``/``auth`` with what the request's list says."""
    security = access_to_spec(configurations)
    kafka.pop("tls", None)
    kafka.pop("auth", None)
    kafka.update(security)


def access_configurations(
    kafka: Mapping[str, Any], *, namespace: str, region: str
) -> list[dict[str, str]]:
    """Lambda's SourceAccessConfigurations for a spec's Kafka source (empty: none)."""

    def arn(name: str) -> str:
        return f"arn:aws:secretsmanager:{region}:{namespace}:secret:{name}"

    found: list[dict[str, str]] = []
    auth = kafka.get("auth")
    if isinstance(auth, Mapping):
        found.append({"Type": str(auth["mechanism"]), "URI": arn(auth["secretRef"]["name"])})
    ca = (kafka.get("tls") or {}).get("caSecretRef")
    if isinstance(ca, Mapping):
        found.append({"Type": CA_TYPE, "URI": arn(ca["name"])})
    return found
