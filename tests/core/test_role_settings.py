"""Each role's settings: built from flags and a given environment, checked, errors naming it.

The builders take the environment as an argument, so these tests never touch os.environ; the entry
points' own behaviour (one line, exit 2) is tests/e2e/test_bad_settings.py.
"""

from __future__ import annotations

import argparse

import pytest

from kfaas import config
from kfaas.cli.command import _parser
from kfaas.cli.settings import invoke_settings, server_settings, watch_namespace
from kfaas.config import Settings
from kfaas.pollers.settings import PollerSettings, poller_settings
from kfaas.runtime.config import ConfigError, config_from_env


def args(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(list(argv))


# -- the shared parsers -------------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "expected"), [(None, 7), ("", 7), (" 0 ", 0), ("65535", 65535)])
def test_port_reads_a_port(raw: str | None, expected: int) -> None:
    environ = {} if raw is None else {"P": raw}
    assert config.port(environ, "P", 7) == expected


@pytest.mark.parametrize("raw", ["http", "-1", "65536", "80.5"])
def test_port_refuses_anything_else_naming_the_variable(raw: str) -> None:
    with pytest.raises(ValueError, match=r"^P='.*' must be a port number, 0 to 65535$"):
        config.port({"P": raw}, "P", 7)


def test_seconds_count_and_choice_name_the_variable_and_the_form() -> None:
    with pytest.raises(ValueError, match=r"^S='soon' must be a number of seconds$"):
        config.seconds({"S": "soon"}, "S", 1.0)
    with pytest.raises(ValueError, match=r"^N='many' must be a whole number, 1 or more$"):
        config.count({"N": "many"}, "N", 1)
    with pytest.raises(ValueError, match=r"^C='c' must be one of a, b$"):
        config.choice({"C": "c"}, "C", ("a", "b"))
    assert config.choice({}, "C", ("a", "b")) == "a"


def test_shared_settings_carry_the_token_key_and_tracing() -> None:
    settings = Settings.from_env(
        {
            "KFAAS_RUNTIME_TOKEN_KEY": "platform-key-123",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
            "OTEL_SERVICE_NAME": "edge",
        }
    )
    assert settings.runtime_token_key == "platform-key-123"
    assert settings.otlp_traces and settings.otel_service_name == "edge"
    assert "platform-key-123" not in repr(settings)  # a secret never reaches a log line
    assert not Settings.from_env({}).otlp_traces
    assert Settings.from_env({"OTEL_TRACES_EXPORTER": "OTLP"}).otlp_traces


def test_in_a_pod_is_the_kubelets_variable() -> None:
    assert config.in_a_pod({"KUBERNETES_SERVICE_HOST": "10.0.0.1"})
    assert not config.in_a_pod({})


# -- kfaas dev and kfaas gateway ----------------------------------------------------------------


def test_gateway_defaults() -> None:
    server = server_settings(args("gateway"), {})
    assert (server.host, server.port, server.backend) == ("127.0.0.1", 8080, "local")
    assert server.watch_namespace is None
    assert server.platform_namespace == "kfaas-system"
    assert server.async_queue == "memory"
    assert [(lst.role, lst.host, lst.port) for lst in server.listeners] == [
        ("all", "127.0.0.1", 8080)
    ]


def test_gateway_variables_are_read_and_flags_win() -> None:
    environ = {
        "KFAAS_GATEWAY_HOST": "0.0.0.0",
        "KFAAS_GATEWAY_PORT": "9000",
        "KFAAS_GATEWAY_BACKEND": "kubernetes",
        "KFAAS_WATCH_NAMESPACE": "team-a",
        "KFAAS_PLATFORM_NAMESPACE": "platform",
        "POD_NAME": "gateway-0",
        "KFAAS_REDIS_URL": "redis://r:6379/0",
        "KFAAS_POLLER_CLAIM_IDLE_SECONDS": "5",
    }
    server = server_settings(args("gateway"), environ)
    assert (server.host, server.port, server.backend) == ("0.0.0.0", 9000, "kubernetes")
    assert (server.watch_namespace, server.platform_namespace) == ("team-a", "platform")
    assert server.replica == "gateway-0"
    # A gateway with the platform's Redis queues events there (DESIGN, "Configuration").
    assert server.async_queue == "redis://r:6379/0"
    assert server.poller.claim_idle_seconds == 5
    flagged = server_settings(
        args("gateway", "--host", "::1", "--port", "1", "--backend", "local", "--namespace", "b"),
        environ,
    )
    assert (flagged.host, flagged.port, flagged.backend) == ("::1", 1, "local")
    assert flagged.watch_namespace == "b"


def test_dev_takes_no_gateway_variables() -> None:
    environ = {"KFAAS_GATEWAY_PORT": "eighty", "KFAAS_GATEWAY_BACKEND": "kubernetes"}
    server = server_settings(args("dev"), environ)
    assert (server.port, server.backend) == (8080, "local")


def test_listen_comes_from_the_flag_else_the_variable() -> None:
    environ = {"KFAAS_LISTEN": "invoke=127.0.0.1:1, trigger=127.0.0.1:2"}
    server = server_settings(args("dev"), environ)
    assert [(lst.role, lst.port) for lst in server.listeners] == [("invoke", 1), ("trigger", 2)]
    flagged = server_settings(args("dev", "--listen", "all=127.0.0.1:3"), environ)
    assert [(lst.role, lst.port) for lst in flagged.listeners] == [("all", 3)]


def test_a_bad_queue_names_the_flag_or_the_variable() -> None:
    with pytest.raises(ValueError, match=r"^KFAAS_ASYNC_QUEUE: async queue 'ftp://q'"):
        server_settings(args("dev"), {"KFAAS_ASYNC_QUEUE": "ftp://q"})
    with pytest.raises(ValueError, match=r"^--async-queue: async queue 'ftp://q'"):
        server_settings(args("dev", "--async-queue", "ftp://q"), {})


def test_credentials_are_refused_for_a_cluster_backend_set_by_variable() -> None:
    with pytest.raises(ValueError, match="--credentials is for local gateways"):
        server_settings(
            args("gateway", "--credentials", "creds.yaml"), {"KFAAS_GATEWAY_BACKEND": "kubernetes"}
        )


def test_watch_namespace() -> None:
    assert watch_namespace(None, {"KFAAS_WATCH_NAMESPACE": "a"}) == "a"
    assert watch_namespace("b", {"KFAAS_WATCH_NAMESPACE": "a"}) == "b"
    assert watch_namespace(None, {"KFAAS_WATCH_NAMESPACE": ""}) is None


# -- kfaas invoke ---------------------------------------------------------------------------------


def test_invoke_settings() -> None:
    plain = invoke_settings(None, {})
    assert (plain.endpoint, plain.credentials, plain.region) == (
        "http://127.0.0.1:8080",
        None,
        "us-east-1",
    )
    environ = {
        "KFAAS_ENDPOINT": "http://gw:80",
        "AWS_ACCESS_KEY_ID": "AKID",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_DEFAULT_REGION": "eu-west-1",
    }
    signed = invoke_settings(None, environ)
    assert signed.endpoint == "http://gw:80" and signed.region == "eu-west-1"
    assert signed.credentials is not None and signed.credentials.access_key_id == "AKID"
    assert invoke_settings("http://other", environ).endpoint == "http://other"


# -- pollers --------------------------------------------------------------------------------------


def test_poller_defaults() -> None:
    assert PollerSettings.from_env({}) == PollerSettings()
    assert PollerSettings().metrics_port is None  # kfaas poller: 9090, kfaas dev: none


def test_poller_variables_are_read() -> None:
    settings, poller = poller_settings(
        {
            "KFAAS_GATEWAY_URL": "http://gw:8080",
            "KFAAS_MAPPING": "kind: EventSourceMapping",
            "KFAAS_POLLER_METRICS_HOST": "0.0.0.0",
            "KFAAS_POLLER_METRICS_PORT": "0",
            "KFAAS_POLLER_STATUS_SECONDS": "1",
            "KFAAS_POLLER_CLAIM_IDLE_SECONDS": "2.5",
            "KFAAS_POLLER_CONSUMER_NAME": "pod-1",
            "KFAAS_GATEWAY_TOKEN_FILE": "/token",
            "KUBECONFIG": "/kube",
            "KFAAS_REDIS_URL": "redis://r/0",
        }
    )
    assert settings.redis_url == "redis://r/0"
    assert poller == PollerSettings(
        gateway_url="http://gw:8080",
        mapping="kind: EventSourceMapping",
        metrics_host="0.0.0.0",
        metrics_port=0,
        status_seconds=1.0,
        claim_idle_seconds=2.5,
        consumer_name="pod-1",
        gateway_token_file="/token",
        in_a_pod=False,
        kubeconfig="/kube",
    )


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("KFAAS_POLLER_CLAIM_IDLE_SECONDS", "abc", "must be a number of seconds"),
        ("KFAAS_POLLER_STATUS_SECONDS", "-1", "must be zero or more seconds"),
        ("KFAAS_POLLER_METRICS_PORT", "x", "must be a port number"),
        ("KFAAS_GATEWAY_URL", "gateway:8080", "must be http://host[:port]"),
        ("KFAAS_GATEWAY_URL", "https://gw", "must be http://host[:port]"),
        ("KFAAS_GATEWAY_URL", "http://gw:port", "must be http://host[:port]"),
    ],
)
def test_bad_poller_values_name_the_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(
        ValueError, match=f"^{variable}=.*{message.replace('[', '.').replace(']', '.')}"
    ):
        PollerSettings.from_env({variable: value})


# -- the runtime ---------------------------------------------------------------------------------


def test_runtime_uvloop_and_ready_fd() -> None:
    base = {"_HANDLER": "app.handler"}
    assert config_from_env(base).uvloop
    assert not config_from_env({**base, "KFAAS_UVLOOP": "0"}).uvloop
    assert config_from_env({**base, "KFAAS_READY_FD": "5"}).ready_fd == 5
    with pytest.raises(ConfigError, match=r"^KFAAS_READY_FD='x' is not an integer$"):
        config_from_env({**base, "KFAAS_READY_FD": "x"})


# -- kfaas operator's --namespace ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "expected"),
    [((), "team-a"), (("--namespace", "team-b"), "team-b")],
)
def test_the_operator_watches_the_flag_else_the_variable(
    argv: tuple[str, ...], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kfaas.cli import main
    from kfaas.operator import main as operator_main

    seen: list[str | None] = []

    async def run_operator(config: object, options: operator_main.OperatorOptions) -> int:
        seen.append(options.namespace)
        return 0

    monkeypatch.setattr(operator_main, "run_operator", run_operator)
    # Logging is the process's to configure; this test must leave pytest's handlers alone.
    monkeypatch.setattr("kfaas.telemetry.configure", lambda component, settings: None)
    monkeypatch.setenv("KFAAS_WATCH_NAMESPACE", "team-a")
    assert main(["operator", "--standalone", *argv]) == 0
    assert seen == [expected]
