"""Settings: KFAAS_* variables, their defaults, and errors that name the variable."""

from __future__ import annotations

import pytest

from kfaas.config import Settings


def test_defaults() -> None:
    assert Settings.from_env({}) == Settings(
        async_retry_base_seconds=60.0,
        stream_retry_base_seconds=1.0,
        default_namespace="default",
        region="us-east-1",
        log_level="info",
    )


def test_variables_are_read() -> None:
    settings = Settings.from_env(
        {
            "KFAAS_ASYNC_RETRY_BASE_SECONDS": "0.5",
            "KFAAS_STREAM_RETRY_BASE_SECONDS": "0",
            "KFAAS_DEFAULT_NAMESPACE": "media",
            "AWS_REGION": "eu-west-1",
            "KFAAS_LOG_LEVEL": "DEBUG",
        }
    )
    assert settings.async_retry_base_seconds == 0.5
    assert settings.stream_retry_base_seconds == 0
    assert settings.default_namespace == "media"
    assert settings.region == "eu-west-1"
    assert settings.log_level == "debug"


def test_kfaas_region_wins_over_aws_region() -> None:
    settings = Settings.from_env({"AWS_REGION": "eu-west-1", "KFAAS_REGION": "ap-south-1"})
    assert settings.region == "ap-south-1"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KFAAS_ASYNC_RETRY_BASE_SECONDS", "soon"),
        ("KFAAS_ASYNC_RETRY_BASE_SECONDS", "-1"),
        ("KFAAS_STREAM_RETRY_BASE_SECONDS", "inf"),
        ("KFAAS_DEFAULT_NAMESPACE", "Media"),
        ("KFAAS_REGION", "EU WEST"),
        ("KFAAS_LOG_LEVEL", "loud"),
    ],
)
def test_bad_values_name_the_variable(variable: str, value: str) -> None:
    with pytest.raises(ValueError, match=variable):
        Settings.from_env({variable: value})
