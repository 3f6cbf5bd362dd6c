"""Which arena thread a request continues: a post, a retry, or a new session.

Clients resend the whole history every turn; the arena keeps the thread on its side, and a
session belongs to the account (so the worker) that opened it. Workers remember each answer's
thread under fingerprints of the history (`shared.threads`); here a request finds it:

- the same history as a remembered turn is a regenerate: `retry` that turn's answer;
- a history that extends a remembered answer (everything after the last assistant message is
  new) continues the thread: `post` only the new messages, on the owning worker's own queue;
- anything else — a new history, an edited one, a thread whose worker is gone or not serving,
  another model — starts a new session carrying the whole transcript.

A thread is continued only from where it stands now (its head): a client that went back and
forked, or regenerated meanwhile, gets a new session. A request claims the head while it runs,
so two at once cannot both continue one thread; the worker moves the head on when it answers.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from pydantic import ValidationError
from redis.asyncio import Redis
from redis.exceptions import RedisError, WatchError

from gateway.conversations.transcript import Turn
from shared import threads
from shared.events import Event
from shared.fleet.worker_status import WorkerStatus
from shared.jobs import Action
from shared.storage import redis_keys
from shared.threads import Head, Remember, Thread

log = logging.getLogger(__name__)

_CLAIMED = "claimed:"


@dataclass(frozen=True, slots=True)
class Plan:
    action: Action
    #: The thread a post continues or a retry regenerates in.
    thread: Thread | None
    #: The turns the arena request sends: only the new ones for a post.
    turns: Sequence[Turn]
    #: What the worker records when it has answered; None: nothing (battles).
    remember: Remember | None
    #: The thread's head as it was before this request claimed it.
    head: bytes | None = None


def fingerprints(scope: str, turns: Sequence[Turn]) -> list[str]:
    """The fingerprint of every prefix of `turns`: `[0]` is the empty history, `[-1]` the whole."""
    prints = [scope]
    for turn in turns:
        prints.append(
            threads.extend(prints[-1], turn.role, turn.identity, (i.digest for i in turn.images))
        )
    return prints


def new_from(turns: Sequence[Turn]) -> int:
    """Where the new messages start: just after the last assistant message (0 if none)."""
    for i in range(len(turns) - 1, -1, -1):
        if turns[i].role == "assistant":
            return i + 1
    return 0


class Conversations:
    def __init__(self, redis: Redis, *, ttl_s: int) -> None:
        self._redis = redis
        self._ttl_s = ttl_s

    async def plan(self, scope: str, turns: Sequence[Turn], *, model: str, job_id: str) -> Plan:
        """How to answer `turns`; a post or retry has claimed its thread for `job_id`."""
        prints = fingerprints(scope, turns)
        remember = Remember(asked=prints[-1], messages=len(turns), ttl_s=self._ttl_s)
        cut = new_from(turns)
        if cut == len(turns):  # ends with an assistant message: a prefill, never a regenerate
            return Plan("create", None, turns, remember)
        thread = await self._thread(prints[-1], model)
        if thread is not None and (head := await self._claim(thread, job_id, asked=prints[-1])):
            return Plan("retry", thread, turns, remember, head)
        if cut:
            thread = await self._thread(prints[cut], model)
            if (
                thread is not None
                and thread.messages == cut
                and (head := await self._claim(thread, job_id, answered=prints[cut]))
            ):
                return Plan("post", thread, turns[cut:], remember, head)
        return Plan("create", None, turns, remember)

    async def remember(self, remember: Remember, session: Event, model: str, answer: str) -> None:
        """Record the arena thread of `session` as `answer` to the history `remember` names.

        For answers the gateway shaped (`answer` is what the client saw, calls included), which
        the worker does not remember: the client sends that back next turn.
        """
        thread = Thread(
            worker=session["worker"],
            session_id=session["session"],
            message_id=session["messages"]["a"],
            model=model,
            messages=remember.messages + 1,
        )
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key, value in threads.remembered(remember, thread, answer).items():
                    pipe.set(key, value, ex=remember.ttl_s)
                await pipe.execute()
        except (RedisError, OSError) as exc:  # the answer is out; the next turn starts anew
            log.warning("could not remember the arena thread %s: %s", thread.session_id, exc)

    async def release(self, plan: Plan, job_id: str) -> None:
        """Give the thread back as it was: the request failed before it was queued."""
        if plan.thread is None or plan.head is None:
            return
        key = redis_keys.conversation_head(plan.thread.session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                if await pipe.get(key) != (_CLAIMED + job_id).encode():
                    return
                pipe.multi()
                pipe.set(key, plan.head, ex=self._ttl_s)
                await pipe.execute()
            except WatchError:
                return

    async def _thread(self, fingerprint: str, model: str) -> Thread | None:
        """The remembered thread, if it is this model's and its worker is serving."""
        raw = await self._redis.get(redis_keys.conversation(fingerprint))
        if raw is None:
            return None
        try:
            thread = Thread.model_validate_json(raw)
        except ValidationError:
            return None  # written by an incompatible version: start over
        if thread.model != model:
            return None
        beat = await self._redis.get(redis_keys.worker_heartbeat(thread.worker))
        try:
            owner = WorkerStatus.load(beat) if beat else None
        except (ValidationError, ValueError):
            owner = None
        return thread if owner is not None and owner.serving else None

    async def _claim(
        self, thread: Thread, job_id: str, *, asked: str | None = None, answered: str | None = None
    ) -> bytes | None:
        """Take the session's head for `job_id` if it stands where the request says it does.

        Returns the head it replaced, or None when it did not take it.
        """
        key = redis_keys.conversation_head(thread.session_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            try:
                await pipe.watch(key)
                raw = await pipe.get(key)
                head = _head(raw)
                if head is None or head.message_id != thread.message_id:
                    return None
                if asked is not None and head.asked != asked:
                    return None
                if answered is not None and head.answered != answered:
                    return None
                pipe.multi()
                pipe.set(key, _CLAIMED + job_id, ex=self._ttl_s)
                await pipe.execute()
            except WatchError:  # another request moved the head meanwhile
                return None
        return raw


def _head(raw: bytes | None) -> Head | None:
    if raw is None or raw.startswith(_CLAIMED.encode()):
        return None
    try:
        return Head.model_validate(orjson.loads(raw))
    except (orjson.JSONDecodeError, ValidationError):
        return None
