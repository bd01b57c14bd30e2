"""Stream pollers keep delivering when the gateway requires signatures (`kfaas dev --auth sigv4`).

`kfaas dev` gives its in-process pollers a bearer token made at start, allowed to invoke and
nothing else; an unsigned client is still refused meanwhile.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError
from devserver import dev_server, make_lambda_client
from streams.kit import FAST, Project, RedisTools, unique

pytestmark = pytest.mark.redis


@pytest.fixture
async def redis(redis_service: Any) -> Any:
    tools = RedisTools(redis_service)
    yield tools
    await tools.client.aclose()


async def test_pollers_invoke_through_a_gateway_that_requires_signatures(
    tmp_path: Path, redis: RedisTools
) -> None:
    project = Project(tmp_path)
    stream, group = unique("s"), unique("g")
    out = project.function("orders")
    source = {"url": redis.url, "stream": stream, "consumerGroup": group,
              "startingPosition": "TRIM_HORIZON"}  # fmt: skip
    project.mapping("orders", "orders", redis=source)
    await redis.add(stream, [{"body": "1"}, {"body": "2"}])
    with dev_server([project.write()], env=FAST, args=["--auth", "sigv4"]) as dev:
        assert await out.wait_values(2) == ["1", "2"]
        await redis.wait_pending(stream, group, 0)
        with pytest.raises(ClientError) as refused:
            make_lambda_client(dev.url).invoke(FunctionName="orders")
        assert refused.value.response["Error"]["Code"] == "UnrecognizedClientException"
        assert "auth: sigv4" in dev.output()
