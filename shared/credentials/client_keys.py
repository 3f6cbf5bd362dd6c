"""Client API keys: made once, shown once, stored in Redis only as their SHA-256.

A key is `lmb-` and 256 random bits (URL-safe base64). With that much entropy a plain SHA-256
cannot be reversed or brute-forced, so no server secret is needed: the CLI and every gateway
hash the same way, and a leaked Redis dump yields no usable key. (A keyed hash would only help
for guessable secrets, and would add a secret to distribute and rotate.)

Records are found by hash (`redis_keys.api_key(sha256)`), so checking a key costs one GET and takes
no time that depends on how close a guess came; the stored hash is then compared with
`hmac.compare_digest` all the same.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Awaitable
from datetime import UTC, datetime
from typing import Annotated, Literal, cast

from pydantic import BaseModel, Field, PositiveInt, StringConstraints, field_validator
from redis.asyncio import Redis

from shared.storage import redis_keys

#: What every key starts with, so that people (and secret scanners) recognise one.
KEY_PREFIX = "lmb-"
#: Characters of a key shown in listings and logs: the prefix and four random ones.
SHOWN_CHARS = len(KEY_PREFIX) + 4

Status = Literal["active", "revoked", "expired"]


class KeySpec(BaseModel):
    """What a new key is allowed: its limits (None means no limit) and its models."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    requests_per_minute: PositiveInt | None = None
    concurrent_streams: PositiveInt | None = Field(
        default=None, description="Answers in progress at once, streamed or not."
    )
    daily_requests: PositiveInt | None = Field(default=None, description="Per UTC day.")
    models: list[str] | None = Field(
        default=None, description="Public model names it may use; None means every model."
    )
    expires_at: datetime | None = Field(default=None, description="A time without zone is UTC.")

    @field_validator("expires_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @field_validator("models")
    @classmethod
    def _some_models(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("list at least one model, or leave it out for every model")
        return value


class ApiKey(KeySpec):
    """A stored key: its spec, who it is (id, shown prefix) and its hash; never the key itself."""

    id: str
    shown: str = Field(description="The key's first characters, to recognise it.")
    hash: str = Field(description="Hex SHA-256 of the key.")
    created_at: datetime
    revoked_at: datetime | None = None

    def status(self, now: datetime) -> Status:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def public(self, now: datetime) -> dict[str, object]:
        """The record as listings show it: no hash, and its status at `now`."""
        return {**self.model_dump(mode="json", exclude={"hash"}), "status": self.status(now)}


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def now_utc() -> datetime:
    return datetime.now(UTC)


class KeyStore:
    """Keys in Redis: create, find by the key a client sends, list, revoke."""

    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def create(self, spec: KeySpec) -> tuple[str, ApiKey]:
        """A new key and its record; the key is returned here and never again."""
        key = new_key()
        record = ApiKey(
            **spec.model_dump(),
            id=secrets.token_hex(6),
            shown=key[:SHOWN_CHARS],
            hash=key_hash(key),
            created_at=now_utc(),
        )
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.set(redis_keys.api_key(record.hash), record.model_dump_json())
            pipe.hset(redis_keys.API_KEYS, record.id, record.hash)
            await pipe.execute()
        return key, record

    async def find(self, key: str) -> ApiKey | None:
        """The record of `key`, whatever its status; None if no such key was ever made."""
        record, _ = await self.lookup(key)
        return record

    async def lookup(self, key: str | None) -> tuple[ApiKey | None, bool]:
        """`key`'s record (None if it was never made, or none was given), and whether any key
        was ever made (revoked ones count: revoking never opens the API).

        Both in one round trip: every request asks both.
        """
        digest = key_hash(key) if key else None
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(redis_keys.API_KEYS)
            if digest is not None:
                pipe.get(redis_keys.api_key(digest))
            made, *raw = await pipe.execute()
        if digest is None or raw[0] is None:
            return None, bool(made)
        record = ApiKey.model_validate_json(raw[0])
        return (record if hmac.compare_digest(record.hash, digest) else None), bool(made)

    async def get(self, key_id: str) -> ApiKey | None:
        digest = await cast(Awaitable[bytes | None], self._redis.hget(redis_keys.API_KEYS, key_id))
        if digest is None:
            return None
        raw = await self._redis.get(redis_keys.api_key(digest.decode()))
        return None if raw is None else ApiKey.model_validate_json(raw)

    async def list(self) -> list[ApiKey]:
        """Every key, oldest first."""
        digests = await cast(Awaitable[list[bytes]], self._redis.hvals(redis_keys.API_KEYS))
        if not digests:
            return []
        raws = await self._redis.mget([redis_keys.api_key(d.decode()) for d in digests])
        records = [ApiKey.model_validate_json(raw) for raw in raws if raw is not None]
        return sorted(records, key=lambda r: (r.created_at, r.id))

    async def revoke(self, key_id: str) -> ApiKey | None:
        """Revoke a key for good (its record stays, for listings and usage); None if unknown."""
        record = await self.get(key_id)
        if record is None:
            return None
        if record.revoked_at is None:
            record = record.model_copy(update={"revoked_at": now_utc()})
            await self._redis.set(redis_keys.api_key(record.hash), record.model_dump_json())
        return record
