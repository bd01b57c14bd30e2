"""The environment a runtime instance gets: ADR 002's contract, for local processes and pods alike.

The operator renders the same variables into a Deployment, so what a handler sees does not depend
on where it runs. Lambda's reserved variables win over the function's own ``environment``.
"""

from __future__ import annotations

from kfaas.manifests import Function


def runtime_environment(
    function: Function, *, task_root: str, region: str, provisioned: bool = False
) -> dict[str, str]:
    """The instance's variables; ``provisioned`` for an instance of ``concurrency.provisioned``,
    which Lambda tells apart by ``AWS_LAMBDA_INITIALIZATION_TYPE`` (ADR 030)."""
    spec = function.spec
    env = dict(spec.environment)
    env.update(
        {
            "_HANDLER": spec.handler,
            "LAMBDA_TASK_ROOT": task_root,
            "AWS_LAMBDA_FUNCTION_NAME": function.metadata.name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory_mb),
            "AWS_LAMBDA_FUNCTION_VERSION": function.version,
            "AWS_REGION": region,
            "AWS_DEFAULT_REGION": region,
            "AWS_LAMBDA_INITIALIZATION_TYPE": (
                "provisioned-concurrency" if provisioned else "on-demand"
            ),
            "KFAAS_RUNTIME": spec.runtime,
            "KFAAS_TIMEOUT_SECONDS": str(spec.timeout_seconds),
            "KFAAS_PER_INSTANCE": str(spec.concurrency.per_instance),
            "KFAAS_NAMESPACE": function.metadata.namespace,
        }
    )
    return env
