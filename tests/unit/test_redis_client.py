"""How the settings become Redis connections (no server needed: nothing connects until used)."""

from __future__ import annotations

import pytest
import redis.asyncio
from arq.connections import ArqRedis
from redis.asyncio.sentinel import SentinelConnectionPool

from shared.settings import Settings
from shared.storage import redis_client


def test_sentinels_are_read_as_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMB_REDIS_SENTINELS", "redis-0.redis:26379, [fd00::1]:26380,redis-2")
    monkeypatch.setenv("LMB_REDIS_SENTINEL_MASTER", "primary")
    settings = Settings()
    assert redis_client.configured(settings)
    assert redis_client.sentinel_addresses(settings.redis_sentinels) == [
        ("redis-0.redis", 26379),
        ("fd00::1", 26380),
        ("redis-2", 26379),
    ]


def test_nothing_configured_means_the_embedded_redis() -> None:
    assert not redis_client.configured(Settings())
    with pytest.raises(ValueError, match="LMB_REDIS_URL or LMB_REDIS_SENTINELS"):
        redis_client.connect(Settings())


def test_a_url_password_is_decoded_and_wins_over_the_setting() -> None:
    client = redis_client.connect(
        Settings(redis_url="redis://:p%40ss%3Aw%2Frd@db:6380/2", redis_password="other")
    )
    kwargs = client.connection_pool.connection_kwargs
    assert (kwargs["password"], kwargs["host"], kwargs["port"], kwargs["db"]) == (
        "p@ss:w/rd",
        "db",
        6380,
        2,
    )


def test_the_settings_fill_in_what_the_url_leaves_out() -> None:
    settings = Settings(
        redis_url="redis://db:6379/0",
        redis_username="bridge",
        redis_password="secret",
        redis_tls=True,
        redis_ca_certs="/etc/ca.pem",
    )
    pool = redis_client.connect(settings).connection_pool
    assert pool.connection_class is redis.asyncio.SSLConnection
    assert {k: pool.connection_kwargs[k] for k in ("username", "password", "ssl_ca_certs")} == {
        "username": "bridge",
        "password": "secret",
        "ssl_ca_certs": "/etc/ca.pem",
    }
    assert pool.connection_kwargs["ssl_check_hostname"] is True


def test_sentinel_mode_asks_the_sentinels_for_the_primary() -> None:
    settings = Settings(
        redis_sentinels=["s1:26379", "s2:26379"],
        redis_sentinel_master="mymaster",
        redis_password="secret",
        redis_sentinel_password="sentinel-secret",
    )
    client = redis_client.connect(settings, ArqRedis)
    assert isinstance(client, ArqRedis)
    pool = client.connection_pool
    assert isinstance(pool, SentinelConnectionPool) and pool.service_name == "mymaster"
    assert pool.connection_kwargs["password"] == "secret"
    sentinels = pool.sentinel_manager.sentinels
    assert [s.connection_pool.connection_kwargs["host"] for s in sentinels] == ["s1", "s2"]
    assert sentinels[0].connection_pool.connection_kwargs["password"] == "sentinel-secret"


def test_every_client_retries_across_a_dropped_connection() -> None:
    pool = redis_client.connect(Settings(redis_url="redis://db")).connection_pool
    retry = pool.connection_kwargs["retry"]
    assert retry._retries == redis_client.RETRIES
    assert redis.ConnectionError in pool.connection_kwargs["retry_on_error"]


def test_describe_never_shows_the_password() -> None:
    shown = redis_client.describe(Settings(redis_url="rediss://:hunter2@db.internal:6380/0"))
    assert shown == "db.internal:6380" and "hunter2" not in shown


def test_a_unix_socket_gets_no_tcp_options() -> None:
    pool = redis_client.connect(Settings(redis_url="unix:///run/redis.sock")).connection_pool
    pool.make_connection()  # the connection class takes every option given
    assert "socket_keepalive" not in pool.connection_kwargs
