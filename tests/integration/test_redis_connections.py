"""Every part of the bridge reaches a Redis that asks for a password and speaks TLS only, as the
settings say: the gateway (its client and arq's), a worker's arq pools and the `keys` command.

The password holds the characters a URL must escape: arq's own DSN parsing would hand Redis the
escaped form, and drop the CA named in the URL's query.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import redis
from arq.connections import RedisSettings

from shared.settings import Settings
from shared.storage import redis_client
from tests.support.played_worker import TEST_SETTINGS, serving
from tests.support.procs import ROOT, free_port, redis_server

PASSWORD = "p@ss:w/rd%#?&=+ é"


@pytest.fixture(scope="module")
def tls_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, Path]]:
    """A redis-server on TLS only, with PASSWORD; its port and its CA's certificate."""
    workdir = tmp_path_factory.mktemp("tls-redis")
    with redis_server(workdir, "--requirepass", PASSWORD, tls=workdir / "tls") as url:
        yield int(url.rsplit(":", 1)[1].split("/")[0]), workdir / "tls" / "ca.pem"


def url_settings(redis_port: int, ca: Path, **extra: Any) -> Settings:
    """The password and the CA in the URL itself, percent-encoded."""
    url = f"rediss://:{quote(PASSWORD, safe='')}@localhost:{redis_port}/0?ssl_ca_certs={quote(str(ca))}"
    return Settings(redis_url=url, **extra)


def separate_settings(redis_port: int, ca: Path, **extra: Any) -> Settings:
    """The password and the CA as settings of their own, the URL bare."""
    return Settings(
        redis_url=f"redis://localhost:{redis_port}/0",
        redis_tls=True,
        redis_password=PASSWORD,
        redis_ca_certs=ca,
        **extra,
    )


@pytest.mark.parametrize("make", [url_settings, separate_settings], ids=["in-url", "settings"])
async def test_clients_and_arq_pools_connect_with_the_password_over_tls(
    tls_redis: tuple[int, Path], make: Any
) -> None:
    port, ca = tls_redis
    settings = make(port, ca)
    async with redis_client.connect(settings) as client:
        assert await client.ping() is True
        await client.set("lmb:test:tls", b"1")
    pool = await redis_client.arq_pool(settings)
    try:
        assert await pool.get("lmb:test:tls") == b"1"
    finally:
        await pool.aclose()
    with redis_client.connect_blocking(settings) as blocking:
        assert blocking.ping() is True


def test_arq_alone_would_not_connect_with_that_url(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    parsed = RedisSettings.from_dsn(url_settings(port, ca).redis_url or "")
    assert parsed.password != PASSWORD and parsed.ssl_ca_certs is None


@pytest.fixture
def no_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Refusals below are for good: no need to see them retried through a failover's time."""
    monkeypatch.setattr(redis_client, "RETRIES", 0)


@pytest.mark.usefixtures("no_retries")
async def test_the_certificate_is_checked(tls_redis: tuple[int, Path], tmp_path: Path) -> None:
    port, _ = tls_redis
    from tests.fakearena.tls import make_certificates

    make_certificates(tmp_path, "localhost")  # another CA, which did not sign Redis's
    async with redis_client.connect(separate_settings(port, tmp_path / "ca.pem")) as client:
        with pytest.raises(redis.ConnectionError, match="certificate verify failed"):
            await client.ping()


@pytest.mark.usefixtures("no_retries")
async def test_a_wrong_password_is_refused(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    settings = separate_settings(port, ca).model_copy(update={"redis_password": None})
    async with redis_client.connect(settings) as client:
        with pytest.raises(redis.AuthenticationError):
            await client.ping()


def test_the_gateway_serves_on_that_redis(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    settings = url_settings(port, ca, port=free_port(), **TEST_SETTINGS)
    with serving(settings) as base:
        ready = httpx.get(f"{base}/readyz", timeout=10)
    assert ready.status_code == 200, ready.text
    assert ready.json()["redis"] == "ok"


def test_the_keys_command_uses_the_same_settings(tls_redis: tuple[int, Path]) -> None:
    port, ca = tls_redis
    env = {
        "PATH": "/usr/bin:/bin",
        "LMB_REDIS_URL": f"rediss://localhost:{port}/0",
        "LMB_REDIS_PASSWORD": PASSWORD,
        "LMB_REDIS_CA_CERTS": str(ca),
    }
    made = subprocess.run(
        [sys.executable, "-m", "cli", "keys", "create", "tls-user"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert made.returncode == 0, made.stderr
    assert made.stdout.startswith("lmb-")


def test_the_tls_port_speaks_nothing_else(tls_redis: tuple[int, Path]) -> None:
    port, _ = tls_redis
    with redis.Redis(port=port, socket_timeout=3) as plain, pytest.raises(redis.ConnectionError):
        plain.ping()
    # The system's CAs do not know the test CA.
    with (
        redis.Redis(port=port, ssl=True, ssl_cert_reqs="required", socket_timeout=3) as unknown,
        pytest.raises(redis.ConnectionError),
    ):
        unknown.ping()
