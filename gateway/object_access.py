"""Reading, checking and writing the management API's objects: what the settings and mapping
operations share (ADR 024).

A write is read-change-replace with the read ``resourceVersion`` as precondition, read again when
another writer came in between (the settings operations carry no RevisionId to check);
the pure modules' ``InvalidParameter`` becomes Lambda's InvalidParameterValueException; a changed
spec is parsed by the same model the CRD is generated from, so the API refuses what ``kubectl
apply`` would, naming the field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager

from kfaas import object_store
from kfaas.api_objects import Model, from_api_object
from kfaas.lambda_shapes import InvalidParameter, object_facts, parse_time
from kfaas.manifests import ManifestError
from kfaas.names import (
    LATEST,
    FunctionRef,
    InvalidFunctionName,
    QualifierMismatch,
    parse_function_name,
)
from kfaas.object_store import Body, ObjectStore

from .errors import InvalidParameterValue, ResourceNotFound
from .management import store_errors
from .services import Services

# A write that meets another writer (resourceVersion precondition) reads again, this many times.
WRITE_ATTEMPTS = 3


@contextmanager
def lambda_parameters() -> Iterator[None]:
    """The pure modules' refusals as Lambda's InvalidParameterValueException."""
    try:
        yield
    except InvalidParameter as exc:
        message = str(exc)
        named = message if exc.parameter in message else f"{exc.parameter}: {message}"
        raise InvalidParameterValue(named) from exc


def function_ref(
    services: Services, raw: str, *, qualifier: str | None = None, parameter: str = "FunctionName"
) -> FunctionRef:
    """The function a request names; a qualifier other than ``$LATEST`` is refused."""
    try:
        ref = parse_function_name(raw, services.registry.default_namespace, qualifier=qualifier)
    except (InvalidFunctionName, QualifierMismatch) as exc:
        raise InvalidParameterValue(str(exc)) from exc
    if ref.qualifier not in (None, LATEST):
        raise InvalidParameterValue(
            f"{parameter}: kfaas keeps this setting per function ($LATEST); a published "
            f"version's is frozen with it, so qualifier {ref.qualifier!r} is not accepted"
        )
    return ref


def modified_epoch(body: Body) -> float:
    """The object's last spec write (else its creation) in seconds since the epoch."""
    facts = object_facts(body)
    times = [parse_time(text) for text in (*facts.spec_writes, facts.created) if text]
    return max(times).timestamp() if times else 0.0


async def modify(
    store: ObjectStore,
    plural: str,
    namespace: str,
    name: str,
    change: Callable[[Body], None],
    *,
    what: str,
    field_manager: str = object_store.GATEWAY_MANAGER,
) -> Body:
    """Read, ``change`` in place, write with the read resourceVersion; read again on a conflict."""
    for attempt in range(WRITE_ATTEMPTS):
        with store_errors(what):
            body = await store.get(plural, namespace, name)
        change(body)
        with store_errors(what):
            try:
                return await store.replace(plural, body, field_manager=field_manager)
            except object_store.Conflict:
                if attempt == WRITE_ATTEMPTS - 1:
                    raise
    raise AssertionError("unreachable")


def checked(body: Body, kind: type[Model]) -> Model:
    """Refuse a changed spec the model (and so the CRD) would refuse, naming the field."""
    try:
        return from_api_object(body, kind)
    except ManifestError as exc:
        raise InvalidParameterValue("; ".join(exc.problems)) from exc


async def find_mapping(
    store: ObjectStore, uid: str, *, namespace: str | None = None, what: str
) -> Body:
    """The EventSourceMapping whose ``metadata.uid`` is ``uid`` (Lambda's UUID), by listing.

    The store has no uid index; mappings are few next to functions, and a list is one call.
    """
    with store_errors(what):
        mappings = await store.list(object_store.EVENT_SOURCE_MAPPINGS, namespace)
    for body in mappings:
        if str(body.get("metadata", {}).get("uid", "")).lower() == uid.lower():
            return body
    raise ResourceNotFound(f"The resource you requested does not exist: {what}")
