"""Every connection to Redis, built in one place from the settings.

Redis is one address (`LMB_REDIS_URL`: `redis://`, `rediss://` for TLS, or `unix://`) or the
primary that Sentinel names (`LMB_REDIS_SENTINELS` and `LMB_REDIS_SENTINEL_MASTER`), which moves
when Sentinel fails it over. The password (`LMB_REDIS_PASSWORD`, or the URL's own), the ACL user
and the TLS settings apply alike to the gateway's client, arq's pools (the gateway's and the
worker's), the heartbeat and the command line; a URL's password may hold any character,
percent-encoded, and its query may name TLS files (`?ssl_ca_certs=/path/ca.pem`).

Commands are retried across a dropped connection: after a failover the next connection goes to
the new primary, so a blocked read of an answer's stream resumes where it was. A write the old
primary took but did not pass on before it died is lost, as Redis replication allows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, overload

import redis
import redis.asyncio
import redis.asyncio.connection
import redis.asyncio.retry
import redis.asyncio.sentinel
import redis.backoff
import redis.connection
import redis.retry
import redis.sentinel
from arq.connections import ArqRedis
from redis.exceptions import ConnectionError, TimeoutError

from shared.settings import Settings

#: Reconnect attempts and their spacing: together they outlast a Sentinel failover (the
#: primary seen down, a replica elected and promoted: seconds).
RETRIES = 40
_BACKOFF = redis.backoff.ExponentialBackoff(cap=0.5, base=0.05)
_CONNECT_TIMEOUT_S = 5.0
_SENTINEL_PORT = 26379

C = TypeVar("C", bound=redis.asyncio.Redis)


class _Reconnecting:
    """A pool whose new connections are retried as commands are: redis-py 5 retries a command
    whose connection dropped, but not the connecting of one taken from the pool, so without this
    a request that starts during a failover fails at once."""

    connection_kwargs: dict[str, Any]

    async def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        retry = self.connection_kwargs["retry"]
        parent = super()
        return await retry.call_with_retry(
            lambda: parent.get_connection(*args, **kwargs),  # type: ignore[attr-defined]
            _nothing,
        )


async def _nothing(error: Exception) -> None:
    """Nothing to clean up: the pool has already put back the connection it could not open."""


class _ReconnectingPool(_Reconnecting, redis.asyncio.ConnectionPool):
    pass


class _ReconnectingSentinelPool(_Reconnecting, redis.asyncio.sentinel.SentinelConnectionPool):
    pass


@dataclass(frozen=True, slots=True)
class _Kind:
    """redis-py's classes for one way of calling it (asyncio or blocking)."""

    pool: type
    sentinel_pool: type
    ssl_connection: type
    sentinel: type
    retry: type
    parse_url: Callable[[str], Any]


_ASYNC = _Kind(
    _ReconnectingPool,
    _ReconnectingSentinelPool,
    redis.asyncio.SSLConnection,
    redis.asyncio.sentinel.Sentinel,
    redis.asyncio.retry.Retry,
    redis.asyncio.connection.parse_url,
)
# The command line's blocking client only polls: a failed round is simply tried again.
_BLOCKING = _Kind(
    redis.ConnectionPool,
    redis.sentinel.SentinelConnectionPool,
    redis.SSLConnection,
    redis.sentinel.Sentinel,
    redis.retry.Retry,
    redis.connection.parse_url,
)


def configured(settings: Settings) -> bool:
    """Whether the settings name a Redis (else `up` runs an embedded one)."""
    return bool(settings.redis_url or settings.redis_sentinels)


def sentinel_addresses(sentinels: list[str]) -> list[tuple[str, int]]:
    """`host:port` entries (`[v6]:port` too; the port defaults to Sentinel's 26379)."""
    addresses = []
    for entry in sentinels:
        host, colon, port = entry.strip().rpartition(":")
        if not colon or not port.isdigit():
            host, port = entry.strip(), str(_SENTINEL_PORT)
        host = host.removeprefix("[").removesuffix("]")
        if not host:
            raise ValueError(f"LMB_REDIS_SENTINELS: {entry!r} is not host:port")
        addresses.append((host, int(port)))
    return addresses


def describe(settings: Settings) -> str:
    """Where Redis is, for logs and messages: never the password."""
    if settings.redis_sentinels:
        return f"Sentinel {','.join(settings.redis_sentinels)} (primary {settings.redis_sentinel_master})"
    url = redis.connection.parse_url(settings.redis_url or "")
    if "path" in url:
        return f"unix:{url['path']}"
    return f"{url.get('host', 'localhost')}:{url.get('port', 6379)}"


@overload
def connect(settings: Settings) -> redis.asyncio.Redis: ...
@overload
def connect(settings: Settings, cls: type[C]) -> C: ...
def connect(settings: Settings, cls: type = redis.asyncio.Redis) -> Any:
    """An asyncio client (`cls`: Redis or a subclass) with a pool of its own."""
    return _client(_ASYNC, settings, cls)


def connect_blocking(settings: Settings) -> redis.Redis:
    """A blocking client, for the command line's loops."""
    return _client(_BLOCKING, settings, redis.Redis)


async def arq_pool(settings: Settings, *, default_queue_name: str | None = None) -> ArqRedis:
    """arq's client, with the bridge's job (de)serializers, checked with a PING."""
    # Imported here: the arq glue imports the job schemas, which import the settings.
    from shared.storage import job_queue

    pool = connect(settings, ArqRedis)
    pool.job_serializer = job_queue.serialize
    pool.job_deserializer = job_queue.deserialize
    if default_queue_name is not None:
        pool.default_queue_name = default_queue_name
    await pool.ping()
    return pool


def _client(kind: _Kind, settings: Settings, cls: type) -> Any:
    common: dict[str, Any] = {
        "socket_connect_timeout": _CONNECT_TIMEOUT_S,
        "retry": kind.retry(_BACKOFF, RETRIES),
        "retry_on_error": [ConnectionError, TimeoutError],
    }
    # A peer that vanished without closing (a network cut) is found out by TCP keep-alives.
    tcp = {"socket_keepalive": True}
    secret = settings.redis_password.get_secret_value() if settings.redis_password else None
    if settings.redis_sentinels:
        return _through_sentinel(kind, settings, cls, {**common, **tcp}, secret)
    if not settings.redis_url:
        raise ValueError("no Redis: set LMB_REDIS_URL or LMB_REDIS_SENTINELS")
    options: dict[str, Any] = dict(kind.parse_url(settings.redis_url))
    # The URL's own credentials win; the settings fill in what it leaves out.
    if "password" not in options and secret is not None:
        options["password"] = secret
    if "username" not in options and settings.redis_username:
        options["username"] = settings.redis_username
    if settings.redis_tls and "path" not in options:
        options["connection_class"] = kind.ssl_connection
    if options.get("connection_class") is kind.ssl_connection:
        # redis-py checks the certificate, not by default that it names the host.
        options.setdefault("ssl_check_hostname", True)
        if settings.redis_ca_certs:
            options.setdefault("ssl_ca_certs", str(settings.redis_ca_certs))
    if "path" not in options:  # not a unix socket
        common.update(tcp)
    return cls(connection_pool=kind.pool(**common, **options))


def _through_sentinel(
    kind: _Kind, settings: Settings, cls: type, common: dict[str, Any], secret: str | None
) -> Any:
    tls: dict[str, Any] = {}
    if settings.redis_tls:
        tls = {"ssl": True}
        if settings.redis_ca_certs:
            tls["ssl_ca_certs"] = str(settings.redis_ca_certs)
    sentinel_secret = settings.redis_sentinel_password
    sentinel = kind.sentinel(
        sentinel_addresses(settings.redis_sentinels),
        sentinel_kwargs={
            "socket_connect_timeout": _CONNECT_TIMEOUT_S,
            "password": sentinel_secret.get_secret_value() if sentinel_secret else None,
            **tls,
        },
        username=settings.redis_username,
        password=secret,
        **common,
        **tls,
    )
    return sentinel.master_for(
        settings.redis_sentinel_master, redis_class=cls, connection_pool_class=kind.sentinel_pool
    )
