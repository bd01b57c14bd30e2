"""Who reads each manifest field: the data tests/tooling/test_reference_fields.py checks.

``READERS`` maps every model field (``Model.field``) to a file outside the models and the CRD
generator, and the expression in it that reads the field, as ``ast.unparse`` prints it. A field
added to a model needs an entry here, naming real code; the test fails otherwise.
"""

from __future__ import annotations

_DUMP_ENV_FROM = (
    "operator/resources/function.py",
    "source.model_dump(by_alias=True, exclude_none=True)",
)
_KAFKA_SECURITY = "kfaas/brokers/kafka_security.py"

# Per model field: (file, expression in it that reads the field).
READERS: dict[str, tuple[str, str]] = {
    # Function
    "FunctionSpec.runtime": ("kfaas/runtimeenv.py", "spec.runtime"),
    "FunctionSpec.handler": ("kfaas/runtimeenv.py", "spec.handler"),
    "FunctionSpec.code": ("kfaas/code.py", "function.spec.code"),
    "FunctionSpec.description": ("gateway/function_reads.py", "function.spec.description"),
    "FunctionSpec.memory_mb": ("kfaas/runtimeenv.py", "spec.memory_mb"),
    "FunctionSpec.timeout_seconds": ("kfaas/runtimeenv.py", "spec.timeout_seconds"),
    "FunctionSpec.environment": ("kfaas/runtimeenv.py", "spec.environment"),
    "FunctionSpec.env_from": ("operator/resources/function.py", "spec.env_from"),
    "FunctionSpec.concurrency": ("kfaas/scaling.py", "spec.concurrency"),
    "FunctionSpec.scaling": ("kfaas/scaling.py", "spec.scaling"),
    "FunctionSpec.async_": ("gateway/dispatcher.py", "function.spec.async_"),
    "FunctionSpec.http": ("gateway/triggers.py", "function.spec.http"),
    "FunctionSpec.tracing": ("gateway/api.py", "function.spec.tracing"),
    "FunctionSpec.pod_template": ("operator/resources/function.py", "spec.pod_template"),
    "Code.inline": ("kfaas/code.py", "function.spec.code.inline"),
    "Code.config_map": ("operator/reconcile.py", "function.spec.code.config_map"),
    "Code.image": ("gateway/registry.py", "code.image"),
    # `kfaas dev` only (the CRD refuses it): the folder it runs the handler from.
    "Code.path": ("gateway/function_code.py", "function.spec.code.path"),
    "Code.zip": ("gateway/function_code.py", "function.spec.code.zip"),
    "StoredZip.sha256": ("gateway/function_code.py", "stored.sha256"),
    "StoredZip.size": ("gateway/function_code.py", "stored.size"),
    # envFrom becomes the container's envFrom whole, each source as written.
    "EnvFromSource.secret_ref": _DUMP_ENV_FROM,
    "EnvFromSource.config_map_ref": _DUMP_ENV_FROM,
    "EnvFromSource.prefix": _DUMP_ENV_FROM,
    "NameRef.name": _DUMP_ENV_FROM,
    "NameRef.optional": _DUMP_ENV_FROM,
    "Concurrency.per_instance": ("kfaas/runtimeenv.py", "spec.concurrency.per_instance"),
    "Concurrency.reserved": ("gateway/invoker.py", "spec.concurrency.reserved"),
    "Concurrency.provisioned": ("kfaas/scaling.py", "spec.concurrency.provisioned"),
    "Scaling.min_instances": ("kfaas/scaling.py", "spec.scaling.min_instances"),
    "Scaling.max_instances": ("kfaas/scaling.py", "spec.scaling.max_instances"),
    "Scaling.scale_to_zero_after_seconds": (
        "kfaas/scaling.py",
        "spec.scaling.scale_to_zero_after_seconds",
    ),
    "Scaling.target_utilization": ("kfaas/scaling.py", "spec.scaling.target_utilization"),
    "AsyncConfig.maximum_retry_attempts": (
        "gateway/dispatcher.py",
        "config.maximum_retry_attempts",
    ),
    "AsyncConfig.maximum_event_age_seconds": (
        "gateway/dispatcher.py",
        "config.maximum_event_age_seconds",
    ),
    "AsyncConfig.on_success": ("gateway/dispatcher.py", "config.on_success"),
    "AsyncConfig.on_failure": ("gateway/dispatcher.py", "config.on_failure"),
    "Destination.kafka": ("kfaas/brokers/destinations.py", "destination.kafka"),
    "Destination.redis": ("kfaas/brokers/destinations.py", "destination.redis"),
    "Destination.function": ("gateway/dispatcher.py", "destination.function"),
    "FunctionDestination.name": ("gateway/dispatcher.py", "destination.function.name"),
    "FunctionDestination.qualifier": ("gateway/dispatcher.py", "destination.function.qualifier"),
    "KafkaDestination.topic": ("kfaas/brokers/destinations.py", "destination.kafka.topic"),
    "KafkaDestination.bootstrap_servers": (
        "kfaas/brokers/destinations.py",
        "destination.kafka.bootstrap_servers",
    ),
    "KafkaDestination.tls": ("kfaas/brokers/destinations.py", "kafka.tls"),
    "KafkaDestination.auth": ("kfaas/brokers/destinations.py", "kafka.auth"),
    "KafkaTls.ca_secret_ref": (_KAFKA_SECURITY, "tls.ca_secret_ref"),
    "KafkaAuth.mechanism": (_KAFKA_SECURITY, "auth.mechanism"),
    "KafkaAuth.secret_ref": (_KAFKA_SECURITY, "auth.secret_ref"),
    "SecretName.name": (_KAFKA_SECURITY, "tls.ca_secret_ref.name"),
    "RedisDestination.stream": ("kfaas/brokers/destinations.py", "destination.redis.stream"),
    "RedisDestination.url": ("kfaas/brokers/destinations.py", "destination.redis.url"),
    "Http.enabled": ("gateway/triggers.py", "http.enabled"),
    "Http.auth": ("gateway/trigger_auth.py", "http.auth"),
    "Http.api_key": ("gateway/trigger_auth.py", "http.api_key"),
    "Http.jwt": ("gateway/trigger_auth.py", "http.jwt"),
    "Http.cors": ("gateway/triggers.py", "http.cors"),
    "ApiKeySource.secret_ref": ("gateway/kube_clients.py", "source.secret_ref"),
    # `kfaas dev` only (the CRD refuses it), as for the JWT keys below.
    "ApiKeySource.file": ("gateway/trigger_keys.py", "source.file"),
    "KeyRef.name": ("gateway/kube_clients.py", "source.secret_ref.name"),
    "KeyRef.key": ("gateway/trigger_keys.py", "ref.key"),
    "Jwt.issuer": ("gateway/trigger_auth.py", "config.issuer"),
    "Jwt.audiences": ("gateway/trigger_auth.py", "config.audiences"),
    "Jwt.jwks_url": ("gateway/trigger_auth.py", "config.jwks_url"),
    "Jwt.keys": ("gateway/trigger_auth.py", "config.keys"),
    "Jwt.scopes": ("gateway/trigger_auth.py", "config.scopes"),
    "JwtKeySource.secret_ref": ("gateway/kube_clients.py", "source.secret_ref"),
    "JwtKeySource.config_map_ref": (
        "gateway/kube_clients.py",
        "getattr(source, 'config_map_ref', None)",
    ),
    "JwtKeySource.file": ("gateway/trigger_keys.py", "source.file"),
    "Cors.allow_credentials": ("gateway/cors.py", "cors.allow_credentials"),
    "Cors.allow_headers": ("gateway/cors.py", "cors.allow_headers"),
    "Cors.allow_methods": ("gateway/cors.py", "cors.allow_methods"),
    "Cors.allow_origins": ("gateway/cors.py", "cors.allow_origins"),
    "Cors.expose_headers": ("gateway/cors.py", "cors.expose_headers"),
    "Cors.max_age": ("gateway/cors.py", "cors.max_age"),
    "Tracing.mode": ("gateway/api.py", "function.spec.tracing.mode"),
    "PodTemplate.metadata": ("operator/resources/function.py", "template.metadata"),
    "PodMetadata.labels": ("operator/resources/function.py", "extra.labels"),
    "PodMetadata.annotations": ("operator/resources/function.py", "extra.annotations"),
    # The scheduling fields go to the pod spec by name (`_placement`'s model_dump include set).
    "PodTemplate.node_selector": ("operator/resources/function.py", "'node_selector'"),
    "PodTemplate.tolerations": ("operator/resources/function.py", "'tolerations'"),
    "PodTemplate.affinity": ("operator/resources/function.py", "'affinity'"),
    "PodTemplate.topology_spread_constraints": (
        "operator/resources/function.py",
        "'topology_spread_constraints'",
    ),
    "PodTemplate.priority_class_name": ("operator/resources/function.py", "'priority_class_name'"),
    "PodTemplate.runtime_class_name": ("operator/resources/function.py", "'runtime_class_name'"),
    # ... and each toleration with them, whole.
    "Toleration.key": ("operator/resources/function.py", "'tolerations'"),
    "Toleration.operator": ("operator/resources/function.py", "'tolerations'"),
    "Toleration.value": ("operator/resources/function.py", "'tolerations'"),
    "Toleration.effect": ("operator/resources/function.py", "'tolerations'"),
    "Toleration.toleration_seconds": ("operator/resources/function.py", "'tolerations'"),
    "PodTemplate.resources": ("operator/resources/function.py", "spec.pod_template.resources"),
    "PodResources.requests": ("operator/resources/function.py", "wanted.requests"),
    "PodResources.limits": ("operator/resources/function.py", "wanted.limits"),
    "PodTemplate.service_account_name": (
        "operator/resources/function.py",
        "template.service_account_name",
    ),
    "PodTemplate.automount_service_account_token": (
        "operator/resources/function.py",
        "template.automount_service_account_token",
    ),
    # EventSourceMapping
    "EventSourceMappingSpec.function_name": ("pollers/runner.py", "spec.function_name"),
    "EventSourceMappingSpec.qualifier": ("pollers/runner.py", "spec.qualifier"),
    "EventSourceMappingSpec.enabled": ("pollers/runner.py", "spec.enabled"),
    "EventSourceMappingSpec.kafka": ("pollers/runner.py", "spec.kafka"),
    "EventSourceMappingSpec.redis": ("pollers/runner.py", "spec.redis"),
    "EventSourceMappingSpec.batch_size": ("pollers/runner.py", "spec.batch_size"),
    "EventSourceMappingSpec.maximum_batching_window_seconds": (
        "pollers/runner.py",
        "spec.maximum_batching_window_seconds",
    ),
    "EventSourceMappingSpec.maximum_retry_attempts": (
        "pollers/runner.py",
        "spec.maximum_retry_attempts",
    ),
    "EventSourceMappingSpec.maximum_record_age_seconds": (
        "pollers/runner.py",
        "spec.maximum_record_age_seconds",
    ),
    "EventSourceMappingSpec.bisect_batch_on_function_error": (
        "pollers/runner.py",
        "spec.bisect_batch_on_function_error",
    ),
    "EventSourceMappingSpec.function_response_types": (
        "pollers/runner.py",
        "spec.function_response_types",
    ),
    "EventSourceMappingSpec.filter_criteria": ("pollers/runner.py", "spec.filter_criteria"),
    "EventSourceMappingSpec.destination_config": (
        "pollers/runner.py",
        "self.mapping.spec.destination_config",
    ),
    "EventSourceMappingSpec.parallelism": ("operator/resources/mapping.py", "spec.parallelism"),
    "KafkaSource.bootstrap_servers": ("pollers/runner.py", "spec.kafka.bootstrap_servers"),
    "KafkaSource.topic": ("pollers/runner.py", "spec.kafka.topic"),
    "KafkaSource.consumer_group_id": ("pollers/runner.py", "spec.kafka.consumer_group_id"),
    "KafkaSource.starting_position": ("pollers/runner.py", "spec.kafka.starting_position"),
    "KafkaSource.tls": ("operator/resources/mapping.py", "spec.kafka.tls"),
    "KafkaSource.auth": ("operator/resources/mapping.py", "spec.kafka.auth"),
    "RedisSource.url": ("pollers/runner.py", "spec.redis.url"),
    "RedisSource.stream": ("pollers/runner.py", "spec.redis.stream"),
    "RedisSource.consumer_group": ("pollers/runner.py", "spec.redis.consumer_group"),
    "RedisSource.starting_position": ("pollers/runner.py", "spec.redis.starting_position"),
    "FilterCriteria.filters": ("pollers/runner.py", "spec.filter_criteria.filters"),
    "Filter.pattern": ("pollers/runner.py", "f.pattern"),
    "DestinationConfig.on_failure": ("pollers/runner.py", "config.on_failure"),
    "StreamDestination.kafka": ("pollers/runner.py", "target.kafka"),
    "StreamDestination.redis": ("pollers/runner.py", "target.redis"),
    # FunctionVersion
    "FunctionVersionSpec.function_name": ("gateway/versions_api.py", "version.spec.function_name"),
    "FunctionVersionSpec.version": ("gateway/registry.py", "version.spec.version"),
    # A version's own description, read from the stored object (its template keeps the function's).
    "FunctionVersionSpec.description": ("gateway/function_reads.py", "get('description', '')"),
    "FunctionVersionSpec.config_sha256": ("gateway/versions_api.py", "newest.config_sha256"),
    # Reported as the version's CodeSha256; kfaas.version_manifests.checked_code refuses a
    # digest that is not the template's code's (kfaas dev's store, the registry, the operator).
    "FunctionVersionSpec.code_sha256": ("gateway/function_reads.py", "version.spec.code_sha256"),
    "FunctionVersionSpec.template": ("gateway/function_reads.py", "version.spec.template"),
    # FunctionAlias
    "FunctionAliasSpec.function_name": ("gateway/aliases_api.py", "alias.spec.function_name"),
    "FunctionAliasSpec.name": ("gateway/aliases_api.py", "alias.spec.name"),
    "FunctionAliasSpec.function_version": ("gateway/registry.py", "alias.spec.function_version"),
    "FunctionAliasSpec.description": ("gateway/aliases_api.py", "alias.spec.description"),
    # Read through the model's `weights` property.
    "FunctionAliasSpec.routing_config": ("gateway/registry.py", "alias.spec.weights"),
    "RoutingConfig.additional_version_weights": ("gateway/registry.py", "alias.spec.weights"),
    # Schedule
    # Shown by `kubectl get schedules -o wide` (a printer column of the generated CRD).
    "ScheduleSpec.description": ("crds/schedules.kfaas.dev.yaml", ".spec.description"),
    # Read through the model's `expression` property (the parsed expression).
    "ScheduleSpec.schedule_expression": ("scheduler/ticks.py", "spec.expression"),
    "ScheduleSpec.schedule_expression_timezone": (
        "scheduler/ticks.py",
        "spec.schedule_expression_timezone",
    ),
    "ScheduleSpec.start_date": ("scheduler/ticks.py", "spec.start_date"),
    "ScheduleSpec.end_date": ("scheduler/ticks.py", "spec.end_date"),
    "ScheduleSpec.state": ("scheduler/ticks.py", "schedule.spec.state"),
    "ScheduleSpec.flexible_time_window": ("scheduler/ticks.py", "spec.flexible_time_window"),
    "ScheduleSpec.target": ("scheduler/firing.py", "schedule.spec.target"),
    "ScheduleSpec.retry_policy": ("scheduler/ticks.py", "schedule.spec.retry_policy"),
    "ScheduleSpec.dead_letter_config": ("scheduler/firing.py", "schedule.spec.dead_letter_config"),
    "FlexibleTimeWindow.mode": ("scheduler/ticks.py", "window.mode"),
    "FlexibleTimeWindow.maximum_window_in_minutes": (
        "scheduler/ticks.py",
        "window.maximum_window_in_minutes",
    ),
    "ScheduleTarget.function_name": ("scheduler/firing.py", "target.function_name"),
    "ScheduleTarget.qualifier": ("scheduler/firing.py", "target.qualifier"),
    "ScheduleTarget.input": ("scheduler/records.py", "schedule.spec.target.input"),
    "RetryPolicy.maximum_event_age_in_seconds": (
        "scheduler/ticks.py",
        "schedule.spec.retry_policy.maximum_event_age_in_seconds",
    ),
    "RetryPolicy.maximum_retry_attempts": ("scheduler/ticks.py", "policy.maximum_retry_attempts"),
}

# Fields one mode reads and the other refuses: the reference must say so in the field's row.
DEV_ONLY = ("code.path", "http.apiKey.file", "http.jwt.keys.file")

# Fields another helper of issue 12 is giving a reader right now (remove an entry once it lands).
PENDING: dict[str, str] = {}
# Documentation another helper of issue 12 is writing right now: path prefixes per kind.
PENDING_DOCS: dict[str, dict[str, str]] = {}

# Fields nothing reads, reported to the lead (issue 12); each should get a reader or be removed.
UNREAD: dict[str, str] = {}
