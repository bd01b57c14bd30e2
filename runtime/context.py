"""Lambda's Python `context` object, as handlers written for Lambda expect to find it.

Attribute names, types (`memory_limit_in_mb` is a string) and the nested `identity` and
`client_context` objects follow awslambdaric's `LambdaContext`, so code that inspects the context
behaves the same under kfaas.
"""

from __future__ import annotations

import os
import time
from typing import Any


class CognitoIdentity:
    __slots__ = ("cognito_identity_id", "cognito_identity_pool_id")

    def __init__(self, raw: dict[str, Any] | None) -> None:
        raw = raw or {}
        self.cognito_identity_id: str | None = raw.get("cognitoIdentityId")
        self.cognito_identity_pool_id: str | None = raw.get("cognitoIdentityPoolId")


class Client:
    __slots__ = (
        "app_package_name",
        "app_title",
        "app_version_code",
        "app_version_name",
        "installation_id",
    )

    def __init__(self, raw: dict[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, raw.get(name))


class ClientContext:
    __slots__ = ("client", "custom", "env")

    def __init__(self, raw: dict[str, Any]) -> None:
        client = raw.get("client")
        self.client: Client | None = Client(client) if isinstance(client, dict) else None
        self.custom: Any = raw.get("custom")
        self.env: Any = raw.get("env")


class LambdaContext:
    def __init__(
        self,
        request_id: str,
        deadline_ms: int,
        invoked_function_arn: str,
        client_context: dict[str, Any] | None,
        cognito_identity: dict[str, Any] | None,
    ) -> None:
        self.aws_request_id = request_id
        self.invoked_function_arn = invoked_function_arn
        self.function_name = os.environ.get("AWS_LAMBDA_FUNCTION_NAME")
        self.function_version = os.environ.get("AWS_LAMBDA_FUNCTION_VERSION")
        self.memory_limit_in_mb = os.environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = CognitoIdentity(cognito_identity)
        self.client_context = ClientContext(client_context) if client_context else None
        self._deadline_ms = deadline_ms

    def get_remaining_time_in_millis(self) -> int:
        return max(self._deadline_ms - int(time.time() * 1000), 0)

    def __repr__(self) -> str:
        return (
            f"LambdaContext(aws_request_id={self.aws_request_id}, "
            f"function_name={self.function_name}, function_version={self.function_version})"
        )
