"""docker-compose.yml's Redis, without a Docker engine: the compose file's own Redis command and
health check run against a real redis-server, and the bridge's Redis settings from the same file
(as compose fills them in from .env) reach it, while a client without the password is refused.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import redis
import yaml

from shared.settings import Settings
from shared.storage import redis_client
from tests.support.procs import ROOT, free_port, redis_server_binary, spawn, stop, wait_for_port

#: What a team puts in .env (see .env.example).
DOT_ENV = {
    "LMB_ADMIN_KEY": "5b1d0c3e9a7f4e2d8c6b0a9f3e1d7c5b",
    "LMB_REDIS_PASSWORD": "0f3c9a7d2b5e8f1a4c6d9e2b7a3f5c8d",
}
_VARIABLE = re.compile(r"\$\$|\$\{(\w+)(?::([-?])([^}]*))?\}")


def interpolate(value: str, env: Mapping[str, str]) -> str:
    """Compose's interpolation of `${VAR}`, `${VAR:-default}`, `${VAR:?error}` and `$$`."""

    def one(match: re.Match[str]) -> str:
        if match[0] == "$$":
            return "$"
        name, kind, word = match[1], match[2], match[3]
        if env.get(name):
            return env[name]
        if kind == "?":
            raise LookupError(f"{name}: {word}")
        return word if kind == "-" else ""

    return _VARIABLE.sub(one, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@contextlib.contextmanager
def compose_redis(compose: dict, workdir: Path) -> Iterator[int]:
    """redis-server run with the compose service's own arguments, on a loopback port."""
    command = [interpolate(arg, DOT_ENV) for arg in compose["services"]["redis"]["command"]]
    assert command[0] == "redis-server"
    port = free_port()
    local = ["--port", str(port), "--bind", "127.0.0.1", "--dir", str(workdir)]
    proc = spawn([redis_server_binary(), *command[1:], *local], log=workdir / "redis.log")
    try:
        wait_for_port(port, proc=proc)
        yield port
    finally:
        stop(proc)


def bridge_settings(compose: dict) -> dict[str, Settings]:
    """Each bridge service's Redis settings, as its environment gives them."""
    found = {}
    for name, service in compose["services"].items():
        environment = service.get("environment", {})
        if "LMB_REDIS_URL" in environment:
            found[name] = Settings(
                **{
                    key.removeprefix("LMB_").lower(): interpolate(str(value), DOT_ENV)
                    for key, value in environment.items()
                    if key.startswith("LMB_REDIS_")
                }
            )
    return found


def test_every_bridge_service_reaches_the_compose_redis_with_its_password(
    compose: dict, tmp_path: Path
) -> None:
    services = bridge_settings(compose)
    assert set(services) == {"gateway-1", "gateway-2", "worker-1", "worker-2"}
    with compose_redis(compose, tmp_path) as port:
        for name, settings in services.items():
            parts = urlsplit(settings.redis_url)
            assert (parts.hostname, parts.port) == ("redis", 6379), name
            here = settings.model_copy(
                update={"redis_url": settings.redis_url.replace("redis:6379", f"127.0.0.1:{port}")}
            )
            # The bridge's own connections, as every part of it makes them.
            with redis_client.connect_blocking(here) as client:
                assert client.ping() is True
        with (
            redis.Redis(port=port, socket_timeout=5) as stranger,
            pytest.raises(redis.AuthenticationError),
        ):
            stranger.ping()


def test_the_compose_redis_health_check_passes_only_with_the_password(
    compose: dict, tmp_path: Path
) -> None:
    service = compose["services"]["redis"]
    kind, check = service["healthcheck"]["test"]
    assert kind == "CMD-SHELL"
    env = {name: interpolate(value, DOT_ENV) for name, value in service["environment"].items()}
    with compose_redis(compose, tmp_path) as port:
        # The container's redis-cli talks to its own server on the default port; ours is elsewhere.
        here = interpolate(check, DOT_ENV).replace("redis-cli", f"redis-cli -p {port}")

        def healthy(environment: dict[str, str]) -> bool:
            run = subprocess.run(
                ["sh", "-c", here],
                env={"PATH": os.environ["PATH"], **environment},
                capture_output=True,
                timeout=10,
            )
            return run.returncode == 0

        assert healthy(env)
        assert not healthy({**env, "REDISCLI_AUTH": "not-the-password"})


def test_compose_refuses_to_start_without_a_redis_password(compose: dict) -> None:
    without = {k: v for k, v in DOT_ENV.items() if k != "LMB_REDIS_PASSWORD"}
    for service in compose["services"].values():
        for value in [*service.get("command", []), *service.get("environment", {}).values()]:
            if "LMB_REDIS_PASSWORD" in str(value):
                with pytest.raises(LookupError, match="LMB_REDIS_PASSWORD"):
                    interpolate(str(value), without)
    assert "${LMB_REDIS_PASSWORD:?" in (ROOT / "docker-compose.yml").read_text()
    assert "LMB_REDIS_PASSWORD=" in (ROOT / ".env.example").read_text()
