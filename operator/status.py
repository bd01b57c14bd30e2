"""What the operator (and the pollers) write under ``status``, as models the CRD schemas come from.

The spec models live in ``kfaas.manifests`` because `kfaas dev` reads them too; the status is a
cluster-only matter, so its shape is defined here, next to the code that writes it. ``crdgen``
renders both into the CRDs' openAPIV3Schema, so the status the API server stores is checked the
same way the spec is.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel


class _Status(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, alias_generator=to_camel)


class Condition(_Status):
    """One step behind readiness, as Kubernetes conditions are everywhere (`kubectl wait`)."""

    type: str
    status: Literal["True", "False", "Unknown"]
    reason: str = ""
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class FunctionStatus(_Status):
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    # sha256 of the code the current pods run (inline or ConfigMap files, or the image name).
    code_sha256: str | None = None
    # Instances asked for by the autoscaler (Deployment replicas) and the ones serving.
    instances: int | None = None
    ready_instances: int | None = None
    # Where the function is invoked through the gateway (its HTTP trigger when enabled).
    url: str | None = None


class MappingStatus(_Status):
    conditions: list[Condition] = Field(default_factory=list)
    observed_generation: int | None = None
    # "kafka:<topic>" or "redis:<stream>", for the printer column.
    source: str | None = None
    # Enabled, Disabled, Creating, Failed — what `kubectl get` shows.
    state: str | None = None
    # Written by the pollers: records behind the head of the source, summed over partitions.
    lag: int | None = None
    last_processing_result: str | None = None
    last_batch_at: str | None = None
