"""Which arena thread a request continues, against a real Redis."""

from __future__ import annotations

import time

import pytest
from redis.asyncio import Redis

from gateway.conversations.continuation import Conversations, Plan, fingerprints, new_from
from gateway.conversations.image_inputs import ImageSource
from gateway.conversations.transcript import Turn
from shared import threads
from shared.fleet.worker_status import WorkerState, WorkerStatus
from shared.storage import redis_keys
from shared.threads import Thread

MODEL = "gemini-2.5-pro"
SCOPE = threads.scope(MODEL, None)


def user(text: str, *images: str) -> Turn:
    return Turn("user", text, tuple(ImageSource(url) for url in images))


def assistant(text: str) -> Turn:
    return Turn("assistant", text)


async def beat(redis: Redis, worker: str, state: WorkerState = WorkerState.READY) -> None:
    status = WorkerStatus(
        id=worker,
        state=state,
        queue=redis_keys.worker_queue(worker),
        capacity=4,
        updated_at=time.time(),
    )
    await redis.set(redis_keys.worker_heartbeat(worker), status.dump())


async def answer(
    redis: Redis,
    plan: Plan,
    text: str,
    *,
    worker: str = "w1",
    session: str = "s1",
    message: str = "m1",
) -> None:
    """What the worker records once it has answered `plan`."""
    assert plan.remember is not None
    thread = Thread(
        worker=worker,
        session_id=session,
        message_id=message,
        model=MODEL,
        messages=plan.remember.messages + 1,
    )
    await redis.mset(threads.remembered(plan.remember, thread, text))


async def plan(redis: Redis, turns: list[Turn], *, job: str = "j", model: str = MODEL) -> Plan:
    return await Conversations(redis, ttl_s=60).plan(
        threads.scope(model, None), turns, model=model, job_id=job
    )


def test_every_prefix_has_a_fingerprint_and_a_longer_history_extends_a_shorter_one() -> None:
    turns = [user("a"), assistant("b"), user("c")]
    prints = fingerprints(SCOPE, turns)
    assert len(prints) == 4 and len(set(prints)) == 4
    assert fingerprints(SCOPE, turns[:2]) == prints[:3]


def test_fingerprints_ignore_whitespace_and_markdown_images_but_not_words_roles_or_images() -> None:
    base = fingerprints(
        SCOPE, [user("hello  world\n"), assistant("Here: ![image](https://x/y.png)")]
    )
    assert base == fingerprints(SCOPE, [user(" hello world"), assistant("Here:")])
    assert base[-1] != fingerprints(SCOPE, [user("hello world!"), assistant("Here:")])[-1]
    assert base[1] != fingerprints(SCOPE, [Turn("system", "hello world")])[1]
    assert base[1] != fingerprints(SCOPE, [user("hello world", "data:image/png;base64,AAAA")])[1]
    assert fingerprints(SCOPE, [Turn("system", "x")]) == fingerprints(
        SCOPE, [Turn("developer", "x")]
    )


def test_scopes_keep_models_and_client_keys_apart() -> None:
    scopes = {
        threads.scope("a", None),
        threads.scope("b", None),
        threads.scope("a", "key-1"),
        threads.scope("a", "key-2"),
    }
    assert len(scopes) == 4


def test_new_messages_start_after_the_last_assistant_message() -> None:
    assert new_from([user("a")]) == 0
    assert new_from([user("a"), assistant("b"), Turn("system", "s"), user("c")]) == 2
    assert new_from([user("a"), assistant("b")]) == 2


async def test_a_new_history_starts_a_session(redis: Redis) -> None:
    first = await plan(redis, [user("hi")])
    assert (first.action, first.thread) == ("create", None)
    assert first.remember is not None and first.remember.messages == 1


async def test_a_history_that_extends_an_answer_posts_only_the_new_messages(redis: Redis) -> None:
    await beat(redis, "w1")
    await answer(redis, await plan(redis, [user("hi")]), "Hello!")
    turns = [user("hi"), assistant("Hello!"), Turn("system", "be brief"), user("how are you?")]
    second = await plan(redis, turns, job="j2")
    assert second.action == "post" and list(second.turns) == turns[2:]
    assert second.thread is not None and (second.thread.worker, second.thread.session_id) == (
        "w1",
        "s1",
    )
    # The thread is claimed: a second request for the same continuation starts a new session.
    assert await redis.get(redis_keys.conversation_head("s1")) == b"claimed:j2"
    assert (await plan(redis, turns, job="j3")).action == "create"


async def test_a_failed_request_gives_its_claim_back(redis: Redis) -> None:
    await beat(redis, "w1")
    await answer(redis, await plan(redis, [user("hi")]), "Hello!")
    turns = [user("hi"), assistant("Hello!"), user("more")]
    claimed = await plan(redis, turns, job="j2")
    await Conversations(redis, ttl_s=60).release(claimed, "j2")
    assert (await plan(redis, turns, job="j3")).action == "post"


async def test_the_same_history_again_is_a_regenerate_of_that_turns_answer(redis: Redis) -> None:
    await beat(redis, "w1")
    await answer(redis, await plan(redis, [user("hi")]), "Hello!", message="m1")
    again = await plan(redis, [user("hi")], job="j2")
    assert again.action == "retry" and again.thread is not None and again.thread.message_id == "m1"
    # After the retry, the thread continues from the new answer, not from the old one.
    await answer(redis, again, "Hi there!", message="m1")
    assert (
        await plan(redis, [user("hi"), assistant("Hello!"), user("x")], job="j3")
    ).action == "create"
    assert (
        await plan(redis, [user("hi"), assistant("Hi there!"), user("x")], job="j4")
    ).action == "post"


async def test_an_edited_history_starts_a_new_session(redis: Redis) -> None:
    await beat(redis, "w1")
    first = await plan(redis, [user("hi")])
    await answer(redis, first, "Hello!")
    edited = await plan(redis, [user("hi!"), assistant("Hello!"), user("and?")], job="j2")
    assert edited.action == "create" and len(edited.turns) == 3


async def test_an_earlier_turn_cannot_be_continued_once_the_thread_moved_on(redis: Redis) -> None:
    await beat(redis, "w1")
    await answer(redis, await plan(redis, [user("a")]), "A", message="m1")
    second = await plan(redis, [user("a"), assistant("A"), user("b")], job="j2")
    await answer(redis, second, "B", message="m2")
    # Going back to turn 1 and forking, or regenerating turn 1, would not match the arena's thread.
    assert (await plan(redis, [user("a"), assistant("A"), user("c")], job="j3")).action == "create"
    assert (await plan(redis, [user("a")], job="j4")).action == "create"
    assert (await plan(redis, [user("a"), assistant("A"), user("b")], job="j5")).action == "retry"


@pytest.mark.parametrize("state", [None, WorkerState.CHALLENGE, WorkerState.STOPPED])
async def test_a_thread_whose_worker_is_gone_or_not_serving_starts_a_new_session(
    redis: Redis, state: WorkerState | None
) -> None:
    if state is not None:
        await beat(redis, "w1", state)
    await answer(redis, await plan(redis, [user("hi")]), "Hello!")
    assert (
        await plan(redis, [user("hi"), assistant("Hello!"), user("x")], job="j2")
    ).action == "create"


async def test_another_model_or_a_prefill_starts_a_new_session(redis: Redis) -> None:
    await beat(redis, "w1")
    await answer(redis, await plan(redis, [user("hi")]), "Hello!")
    assert (
        await plan(redis, [user("hi"), assistant("Hello!"), user("x")], model="other")
    ).action == "create"
    assert (await plan(redis, [user("hi"), assistant("Hello!")], job="j2")).action == "create"
