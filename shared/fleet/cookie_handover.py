"""Cookies imported for an account, handed to its worker through Redis.

`lmarena-bridge accounts import` pushes them on the worker's list (`redis_keys.worker_cookies`),
sealed with AES-GCM under a key derived from the admin key and the worker's name: they are the
account's sign-in, and whoever merely reads Redis must not get it (as with the screens'
passwords, `shared.credentials.vnc`). The worker takes them while it runs, or once it has started, and
pushes what became of them on the import's own list (`redis_keys.cookie_import`), where the
command waits. Imports nobody takes expire after `PENDING_TTL_S`.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from collections.abc import Awaitable
from dataclasses import asdict, dataclass
from typing import Any, cast

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from redis.asyncio import Redis

from shared.credentials.admin_key import derived
from shared.storage import redis_keys

#: How long an import waits for a worker that is not running.
PENDING_TTL_S = 7 * 86400
#: How long a worker's answer waits for the command that asked.
OUTCOME_TTL_S = 600
_NONCE_BYTES = 12

Cookies = list[dict[str, Any]]


class SealError(ValueError):
    """Not sealed for this worker under this admin key (or not sealed at all)."""


@dataclass(frozen=True, slots=True)
class Import:
    """One import as the worker pops it: its id (for the answer) and the sealed cookies."""

    id: str
    sealed: bytes


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of an import: whether the arena then says the browser is signed in, as whom."""

    signed_in: bool
    account: str | None
    #: What the worker found, in one line (never a cookie's value).
    detail: str


def _cipher(admin_key: str, worker_id: str) -> AESGCM:
    return AESGCM(derived(admin_key, "cookies", worker_id))


def seal(admin_key: str, worker_id: str, cookies: Cookies) -> bytes:
    nonce = secrets.token_bytes(_NONCE_BYTES)
    return nonce + _cipher(admin_key, worker_id).encrypt(
        nonce, orjson.dumps(cookies), worker_id.encode()
    )


def unseal(admin_key: str, worker_id: str, sealed: bytes) -> Cookies:
    nonce, box = sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:]
    try:
        plain = _cipher(admin_key, worker_id).decrypt(nonce, box, worker_id.encode())
    except (InvalidTag, ValueError):
        raise SealError(
            f"the cookies were not sealed for {worker_id} with this worker's LMB_ADMIN_KEY"
        ) from None
    return cast(Cookies, orjson.loads(plain))


async def hand_over(redis: Redis, admin_key: str, worker_id: str, cookies: Cookies) -> str:
    """Queue `cookies` for `worker_id`; the import's id, to wait for its outcome with."""
    import_id = secrets.token_hex(8)
    item = orjson.dumps(
        {"id": import_id, "sealed": base64.b64encode(seal(admin_key, worker_id, cookies)).decode()}
    )
    key = redis_keys.worker_cookies(worker_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.rpush(key, item)
        pipe.expire(key, PENDING_TTL_S)
        await pipe.execute()
    return import_id


async def next_import(redis: Redis, worker_id: str, timeout_s: float) -> Import | None:
    """The oldest import waiting for `worker_id`, within `timeout_s`; None if none came."""
    popped = await cast(
        Awaitable[list[bytes] | None],
        # Redis takes a fractional timeout; redis-py's types say whole seconds only.
        redis.blpop([redis_keys.worker_cookies(worker_id)], timeout=cast(Any, timeout_s)),
    )
    if popped is None:
        return None
    try:
        item = orjson.loads(popped[1])
        return Import(str(item["id"]), base64.b64decode(item["sealed"], validate=True))
    except (orjson.JSONDecodeError, KeyError, TypeError, binascii.Error):
        return Import("", b"")  # not ours: unsealing it fails, and nobody waits for its answer


async def answer(redis: Redis, import_id: str, outcome: Outcome) -> None:
    key = redis_keys.cookie_import(import_id)
    async with redis.pipeline(transaction=True) as pipe:
        pipe.rpush(key, orjson.dumps(asdict(outcome)))
        pipe.expire(key, OUTCOME_TTL_S)
        await pipe.execute()


async def outcome(redis: Redis, import_id: str, timeout_s: float) -> Outcome | None:
    """The worker's answer to an import, within `timeout_s`; None if it gave none."""
    popped = await cast(
        Awaitable[list[bytes] | None],
        redis.blpop([redis_keys.cookie_import(import_id)], timeout=cast(Any, timeout_s)),
    )
    return None if popped is None else Outcome(**orjson.loads(popped[1]))
