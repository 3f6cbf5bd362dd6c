"""Responses the bridge answered, kept so that `previous_response_id` can continue them.

A response is kept (unless the request said `store: false`) as the conversation it ends: the
turns it was asked with and its answer (text and calls, under the call ids the client saw), for
`LMB_CONVERSATION_TTL_SECONDS`, per client key. A request naming it starts from those turns.
Instructions are not carried over, as in OpenAI's API.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import TypeAdapter, ValidationError
from redis.asyncio import Redis

from gateway.conversations.transcript import Turn
from gateway.http import errors
from shared.storage import redis_keys

_TURNS = TypeAdapter(list[Turn])


class StoredResponses:
    def __init__(self, redis: Redis, *, client: str | None, ttl_s: int) -> None:
        self._redis = redis
        self._client = client
        self._ttl_s = ttl_s

    async def keep(self, response_id: str, turns: Sequence[Turn]) -> None:
        """Keep `turns` (without the system turns: instructions are per request)."""
        kept = [t for t in turns if t.role != "system"]
        key = redis_keys.stored_response(self._client, response_id)
        await self._redis.set(key, _TURNS.dump_json(kept), ex=self._ttl_s)

    async def turns(self, response_id: str) -> list[Turn]:
        """The conversation `response_id` ended; 400 when the bridge keeps no such response."""
        raw = await self._redis.get(redis_keys.stored_response(self._client, response_id))
        try:
            return _TURNS.validate_json(raw) if raw is not None else _missing(response_id)
        except ValidationError:  # kept by an incompatible version
            return _missing(response_id)


def _missing(response_id: str) -> list[Turn]:
    raise errors.invalid(
        f"Previous response with id '{response_id}' not found: the bridge keeps responses for "
        "a while unless `store` was false.",
        param="previous_response_id",
        code="previous_response_not_found",
    )
