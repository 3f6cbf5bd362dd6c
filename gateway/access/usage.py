"""What each key used, recorded in Redis; and what one request's answer adds to it."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from redis.asyncio import Redis

from gateway.answers.fold import Answers
from shared.events import Event
from shared.storage import redis_keys

#: The key id that requests without a key are counted under (an open, loopback-only bridge).
ANONYMOUS = "anonymous"
METRICS = ("requests", "errors", "prompt_tokens", "completion_tokens")
#: Events that show the client something: the first of them is the answer's first token.
_CONTENT = frozenset({"text", "reasoning", "image", "finish"})


class Tally:
    """A job's events folded as the gateway relays them: tokens, first content, failure.

    Tokens are counted as the client's answer shows them (see `gateway.answers.fold`).
    """

    def __init__(self, prompt: str, *, sides: int = 1) -> None:
        self._prompt = prompt
        self._answers = Answers(sides)
        self.answered = False
        #: `time.perf_counter()` when the first content arrived.
        self.first_content_at: float | None = None
        #: The kind of the error event that ended the job, if one did.
        self.error: str | None = None

    def add(self, batch: list[Event]) -> None:
        for event in batch:
            kind = event["t"]
            if kind == "error":
                self.error = event.get("kind") or "internal"
                continue
            if kind in _CONTENT and not self.answered:
                self.answered = True
                self.first_content_at = time.perf_counter()
            self._answers.add(event)

    def tokens(self) -> tuple[int, int]:
        """Prompt and completion tokens; none if unanswered."""
        if not self.answered:
            return 0, 0
        return self._answers.tokens(self._prompt)


@dataclass(frozen=True, slots=True)
class UsageRow:
    day: str
    key_id: str
    model: str
    requests: int = 0
    errors: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0


class UsageStore:
    """What each key used, per model and UTC day, in Redis: requests, errors and tokens.

    One hash per day (`redis_keys.usage(day)`), fields `key|model|metric`, kept `retention_days`.
    Every gateway adds to the same hashes, so the totals are the deployment's.
    """

    def __init__(self, redis: Redis, *, retention_days: int) -> None:
        self._redis = redis
        self._retention_s = retention_days * 86_400

    async def record(
        self,
        key_id: str,
        model: str,
        *,
        failed: bool,
        requests: int = 1,
        prompt_tokens: int = 0,
        completion_tokens: int = 0,
    ) -> None:
        day = redis_keys.usage(datetime.now(UTC).date().isoformat())
        counts = {
            "requests": requests,
            "errors": int(failed),
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
        }
        async with self._redis.pipeline(transaction=False) as pipe:
            for metric, n in counts.items():
                if n:
                    pipe.hincrby(day, _field(key_id, model, metric), n)
            pipe.expire(day, self._retention_s)
            await pipe.execute()

    async def rows(self, *, days: int, key_id: str | None = None) -> list[UsageRow]:
        """The last `days` UTC days (today included), newest first, of one key or all."""
        today = datetime.now(UTC).date()
        span = [today - timedelta(days=n) for n in range(days)]
        async with self._redis.pipeline(transaction=False) as pipe:
            for day in span:
                pipe.hgetall(redis_keys.usage(day.isoformat()))
            hashes = await pipe.execute()
        rows: list[UsageRow] = []
        for day, fields in zip(span, hashes, strict=True):
            rows += [r for r in rows_of(day, fields) if key_id is None or r.key_id == key_id]
        return rows


def rows_of(day: date, fields: Mapping[bytes, bytes]) -> list[UsageRow]:
    """One day's hash as rows, one per key and model, sorted."""
    found: dict[tuple[str, str], dict[str, int]] = {}
    for name, value in fields.items():
        key_id, model, metric = _parse_field(name.decode())
        if metric in METRICS:
            found.setdefault((key_id, model), {})[metric] = int(value)
    return [
        UsageRow(day.isoformat(), key_id, model, **counts)
        for (key_id, model), counts in sorted(found.items())
    ]


def _field(key_id: str, model: str, metric: str) -> str:
    return f"{key_id}|{model}|{metric}"


def _parse_field(name: str) -> tuple[str, str, str]:
    # Key ids and metrics never hold "|"; a model name might, so it is what lies between.
    key_id, rest = name.split("|", 1)
    model, metric = rest.rsplit("|", 1)
    return key_id, model, metric
