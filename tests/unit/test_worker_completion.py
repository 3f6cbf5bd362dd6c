from __future__ import annotations

import time

import orjson

from shared import events
from shared.arena.errors import classify
from shared.arena.ids import uuid7_time_ms
from shared.arena.stream import LineParser
from shared.fleet.worker_status import WorkerState, WorkerStatus
from shared.jobs import CompletionJob
from shared.threads import Thread
from worker.arena.completion import (
    Relayed,
    RequestIds,
    build_request,
    events_of,
    pick_peer,
    stop_requests,
    thread_gone,
)


def job(**changes: object) -> CompletionJob:
    fields = {
        "id": "r1",
        "model": "m",
        "model_id": "model-a",
        "prompt": "hi",
        "created_at": time.time(),
    }
    return CompletionJob.model_validate({**fields, **changes})


def status(worker_id: str, state: WorkerState = WorkerState.READY, busy: int = 0) -> WorkerStatus:
    return WorkerStatus(
        id=worker_id,
        state=state,
        queue=f"q:{worker_id}",
        capacity=4,
        busy=busy,
        updated_at=time.time(),
    )


def test_every_attempt_gets_fresh_uuid7_ids() -> None:
    one, two = RequestIds.fresh(job()), RequestIds.fresh(job())
    assert len({one.session, one.user_message, one.model_a_message, two.session}) == 4
    assert abs(uuid7_time_ms(one.session) - time.time() * 1000) < 5_000
    assert one.model_b_message is None
    assert RequestIds.fresh(job(model_b_id="model-b", mode="battle")).model_b_message is not None


def test_the_request_carries_the_job_and_the_token() -> None:
    the_job = job(modality="search", prompt="find x")
    ids = RequestIds.fresh(the_job)
    request = build_request(the_job, ids, "tok")
    assert (request.method, request.path) == ("POST", "/nextjs-api/stream/create-evaluation")
    body = request.body
    assert body["id"] == ids.session and body["mode"] == "direct" and body["modality"] == "search"
    assert body["modelAId"] == "model-a" and body["modelAMessageId"] == ids.model_a_message
    assert body["userMessage"]["content"] == "find x" and body["recaptchaV3Token"] == "tok"


def test_lines_split_anywhere_become_the_same_events() -> None:
    body = 'ag:"think"\na0:"Hel"\na0:"lo é"\nad:{"finishReason":"stop"}\n'
    whole = events_of(LineParser().feed(body))
    parser = LineParser()
    pieces = [events_of(parser.feed(body[i : i + 3])) for i in range(0, len(body), 3)]
    assert [event for piece in pieces for event in piece] == whole
    assert [event["t"] for event in whole] == ["reasoning", "text", "text", "finish"]
    assert orjson.dumps(whole)  # plain JSON, as the stream stores it


def test_a_peer_is_a_serving_worker_not_excluded_preferring_ready_and_idle() -> None:
    statuses = [
        status("w-busy", WorkerState.BUSY, busy=4),
        status("w-loaded", busy=3),
        status("w-idle", busy=0),
        status("w-limited", WorkerState.COOLING),
        status("w-me"),
    ]
    assert pick_peer(statuses, excluded=["w-me"]).id == "w-idle"
    assert pick_peer(statuses, excluded=["w-me", "w-idle"]).id == "w-loaded"
    assert pick_peer(statuses, excluded=["w-me", "w-idle", "w-loaded"]).id == "w-busy"
    assert pick_peer(statuses[3:], excluded=["w-me"]) is None


def thread(**changes: object) -> Thread:
    fields = {"worker": "w1", "session_id": "s-1", "message_id": "m-1", "model": "m", "messages": 2}
    return Thread.model_validate({**fields, **changes})


def test_a_post_sends_only_the_new_message_to_the_threads_session_with_fresh_message_ids() -> None:
    the_job = job(
        action="post", thread=thread(), prompt="<user>\nall of it\n</user>", message="new"
    )
    ids = RequestIds.fresh(the_job)
    assert ids.user_message is not None
    assert ids.session == "s-1" and ids.user_message < ids.model_a_message
    attachment = {"name": "k", "contentType": "image/png", "url": "https://x/k"}
    request = build_request(the_job, ids, "tok", [attachment])
    assert (request.method, request.path) == ("POST", "/nextjs-api/stream/post-to-evaluation/s-1")
    assert "mode" not in request.body and request.body["id"] == "s-1"
    assert request.body["userMessage"] == {
        "content": "new",
        "experimental_attachments": [attachment],
    }


def test_a_retry_regenerates_the_threads_message_with_only_a_token() -> None:
    the_job = job(action="retry", thread=thread())
    ids = RequestIds.fresh(the_job)
    assert (ids.session, ids.model_a_message, ids.messages()) == ("s-1", "m-1", {"a": "m-1"})
    request = build_request(the_job, ids, "tok")
    assert (request.method, request.path) == (
        "PUT",
        "/nextjs-api/stream/retry-evaluation-session-message/s-1/messages/m-1",
    )
    assert request.body == {"recaptchaV3Token": "tok"}


def test_a_new_session_carries_the_transcript_and_every_image() -> None:
    images = [
        {"digest": "old", "media_type": "image/png", "new": False},
        {"digest": "now", "media_type": "image/png"},
    ]
    the_job = job(action="post", thread=thread(), prompt="whole", message="new", images=images)
    assert [i.digest for i in the_job.sent_images()] == ["now"]
    fresh = the_job.as_new_session()
    assert (fresh.action, fresh.thread, fresh.message) == ("create", None, None)
    assert [i.digest for i in fresh.sent_images()] == ["old", "now"]
    body = build_request(fresh, RequestIds.fresh(fresh), "tok").body
    assert body["mode"] == "direct" and body["userMessage"]["content"] == "whole"
    assert body["id"] != "s-1"


def test_a_battle_gets_a_message_id_for_each_side() -> None:
    the_job = job(model_b_id="model-b", mode="battle")
    ids = RequestIds.fresh(the_job)
    assert set(ids.messages()) == {"a", "b"}
    body = build_request(the_job, ids, "tok").body
    assert (body["modelBId"], body["modelBMessageId"]) == ("model-b", ids.model_b_message)


def test_a_session_gone_or_not_ours_is_told_from_other_refusals() -> None:
    assert thread_gone(classify(404, {}, '{"error":"Evaluation session not found"}'))
    assert thread_gone(
        classify(401, {}, '{"error":"User u does not have access to evaluation session s"}')
    )
    assert not thread_gone(classify(401, {}, '{"error":"LOGIN_GATE","message":"Sign in"}'))
    assert not thread_gone(classify(429, {}, "Too many requests"))
    assert not thread_gone(classify(400, {}, '{"error":"Message ID already used"}'))


def test_an_answer_is_complete_when_it_finished_without_an_error() -> None:
    relayed = Relayed()
    relayed.add([events.text("a", "Hel"), events.text("b", "other"), events.text("a", "lo")])
    assert relayed.texts == ["Hel", "lo"] and not relayed.complete
    relayed.add([events.finish("a", "stop")])
    assert relayed.complete
    relayed.add([events.error("upstream", "boom")])
    assert not relayed.complete


def test_a_retry_uploads_nothing_it_sends_no_message() -> None:
    images = [{"digest": "d", "media_type": "image/png"}]
    assert job(action="retry", thread=thread(), images=images).sent_images() == []


def test_a_battle_is_stopped_on_both_sides_and_a_direct_answer_on_its_own() -> None:
    battle = RequestIds("s", "u", "ma", "mb")
    assert [r.path for r in stop_requests(battle)] == [
        "/nextjs-api/stream/stop/s/messages/ma",
        "/nextjs-api/stream/stop/s/messages/mb",
    ]
    assert [r.path for r in stop_requests(RequestIds("s", "u", "ma", None))] == [
        "/nextjs-api/stream/stop/s/messages/ma"
    ]


def test_a_sides_failure_fails_a_direct_answer_and_only_that_side_of_a_battle() -> None:
    parts = LineParser().feed('a0:"Hi"\na3:"Model overloaded"\nb0:"Hello"\n')
    assert events_of(parts) == [
        events.text("a", "Hi"),
        events.error("upstream", "Model overloaded"),
        events.text("b", "Hello"),
    ]
    assert events_of(parts, battle=True) == [
        events.text("a", "Hi"),
        events.side_failed("a", "Model overloaded"),
        events.text("b", "Hello"),
    ]


def test_a_new_chat_goes_out_in_the_mode_given_and_a_battle_keeps_its_own() -> None:
    the_job = job()
    body = build_request(the_job, RequestIds.fresh(the_job), "tok", mode="direct-battle").body
    assert body["mode"] == "direct-battle" and "modelBId" not in body
    assert "modelBMessageId" not in body
    battle = job(model_b_id="model-b", mode="battle")
    body = build_request(battle, RequestIds.fresh(battle), "tok").body
    assert (body["mode"], body["modelBId"]) == ("battle", "model-b")
