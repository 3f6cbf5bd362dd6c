from __future__ import annotations

import time

import orjson

from shared.arena.ids import uuid7_time_ms
from shared.arena.stream import LineParser
from shared.jobs import CompletionJob
from shared.workers import WorkerState, WorkerStatus
from worker.completion import RequestIds, build_request, events_of, pick_peer


def job(**changes: object) -> CompletionJob:
    fields = {"id": "r1", "model": "m", "model_id": "model-a", "prompt": "hi", "created_at": time.time()}
    return CompletionJob.model_validate({**fields, **changes})


def status(worker_id: str, state: WorkerState = WorkerState.READY, busy: int = 0) -> WorkerStatus:
    return WorkerStatus(
        id=worker_id, state=state, queue=f"q:{worker_id}", capacity=4, busy=busy, updated_at=time.time()
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
        status("w-limited", WorkerState.RATE_LIMITED),
        status("w-me"),
    ]
    assert pick_peer(statuses, excluded=["w-me"]).id == "w-idle"
    assert pick_peer(statuses, excluded=["w-me", "w-idle"]).id == "w-loaded"
    assert pick_peer(statuses, excluded=["w-me", "w-idle", "w-loaded"]).id == "w-busy"
    assert pick_peer(statuses[3:], excluded=["w-me"]) is None
