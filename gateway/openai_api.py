"""OpenAI's API: `GET /models`, `GET /models/{model}`, `POST /chat/completions`."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from gateway import errors
from gateway.auth import require_key
from gateway.catalog import Catalog
from gateway.disconnect import unless_disconnected
from gateway.openai_format import KEEPALIVE, ChunkStream, completion
from gateway.openai_schemas import ChatCompletionRequest, parse_chat_request
from gateway.relay import CONTENT, Relay
from gateway.services import Services, services
from gateway.transcript import prompt_from_messages
from shared.arena.catalog import Model
from shared.events import Event
from shared.jobs import CompletionJob

log = logging.getLogger(__name__)

router = APIRouter(dependencies=[Depends(require_key)])

_SSE_HEADERS = {
    "Cache-Control": "no-cache",
    # nginx would otherwise buffer the stream and defeat it.
    "X-Accel-Buffering": "no",
}
_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": ChatCompletionRequest.model_json_schema()}},
    }
}


@router.get("/models")
async def list_models(svc: Services = Depends(services)) -> dict[str, Any]:
    catalog = await svc.catalog.get()
    if catalog is None:
        return {"object": "list", "data": []}
    return {"object": "list", "data": [_model_object(m, catalog) for m in catalog.listed()]}


@router.get("/models/{name:path}")
async def retrieve_model(name: str, svc: Services = Depends(services)) -> dict[str, Any]:
    catalog = await _catalog(svc)
    return _model_object(_find(catalog, name), catalog)


@router.post("/chat/completions", openapi_extra=_REQUEST_BODY)
async def chat_completions(request: Request, svc: Services = Depends(services)) -> Response:
    settings = svc.settings
    # Read and validated by hand, so that every failure gets OpenAI's body and a precise param.
    body = parse_chat_request(await request.body())
    if body.n is not None and body.n > 1:
        raise errors.unprocessable(
            "Only n=1 is supported: the arena gives one answer per request.", param="n"
        )
    prompt = prompt_from_messages(body.messages)
    model = _find(await _catalog(svc), body.model)
    await unless_disconnected(
        request.receive, svc.fleet.wait_serving(settings.worker_wait_seconds)
    )

    job = CompletionJob(
        id=uuid.uuid4().hex,
        model=model.public_name,
        model_id=model.id,
        modality=model.modality,
        prompt=prompt,
        created_at=time.time(),
    )
    relay = Relay(
        svc.redis,
        svc.pool,
        job,
        timeout_s=settings.job_timeout_seconds,
        events_ttl_s=settings.events_ttl_seconds,
    )
    await relay.submit()
    log.info("job %s queued: model=%s stream=%s", job.id, job.model, body.stream)
    if body.stream:
        return await _stream(request, relay, body, svc)
    return await _complete(request, relay, svc)


async def _complete(request: Request, relay: Relay, svc: Services) -> Response:
    try:
        events = await unless_disconnected(
            request.receive, _collect(relay, svc.settings.keepalive_seconds)
        )
    finally:
        await relay.abandon()
    _raise_error(events)
    job = relay.job
    body = completion(_completion_id(job), job.model, int(job.created_at), job.prompt, events)
    return Response(orjson.dumps(body), media_type="application/json")


async def _collect(relay: Relay, keepalive_s: float) -> list[Event]:
    return [event async for batch in relay.rest(keepalive_s) for event in batch]


async def _stream(
    request: Request, relay: Relay, body: ChatCompletionRequest, svc: Services
) -> Response:
    settings = svc.settings
    # Hold the 200 back briefly, so that a failure before the first token gets a real status.
    try:
        early = await unless_disconnected(
            request.receive, relay.first(settings.first_event_wait_seconds)
        )
    except BaseException:
        await relay.abandon()
        raise
    _raise_error(_before_content(early))
    job = relay.job
    chunks = ChunkStream(
        _completion_id(job),
        job.model,
        int(job.created_at),
        job.prompt,
        include_usage=body.include_usage,
    )
    frames = _frames(relay, chunks, early, settings.keepalive_seconds)
    # The disconnect may cancel the body while it is parked at a `yield`; closing the
    # generator afterwards runs its cleanup (cancelling the job) in that case too.
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers=_SSE_HEADERS,
        background=BackgroundTask(frames.aclose),
    )


async def _frames(
    relay: Relay, chunks: ChunkStream, early: list[Event], keepalive_s: float
) -> AsyncIterator[bytes]:
    try:
        frames, failure = _render(chunks, early)
        yield chunks.start() + frames
        # An error is the last event the relay hands over, so the loop ends with it.
        if failure is None:
            async for batch in relay.rest(keepalive_s):
                if not batch:
                    yield KEEPALIVE
                    continue
                # One write per batch: a backlog of tokens goes out together.
                frames, failure = _render(chunks, batch)
                if frames:
                    yield frames
        if failure is None:
            yield chunks.end()
        else:
            log.info("job %s failed after the first byte: %s", relay.job.id, failure["kind"])
    finally:
        await relay.abandon()


def _render(chunks: ChunkStream, batch: list[Event]) -> tuple[bytes, Event | None]:
    """The frames for `batch`, and its error event if it ended in one (framed, with [DONE])."""
    frames = b""
    for event in batch:
        if event["t"] == "error":
            return frames + chunks.error(errors.from_event(event).body()), event
        frames += chunks.event(event)
    return frames, None


def _before_content(events: list[Event]) -> list[Event]:
    """The events before the first one a client would see."""
    for i, event in enumerate(events):
        if event["t"] in CONTENT:
            return events[:i]
    return events


def _raise_error(events: list[Event]) -> None:
    for event in events:
        if event["t"] == "error":
            raise errors.from_event(event)


def _completion_id(job: CompletionJob) -> str:
    return f"chatcmpl-{job.id}"


async def _catalog(svc: Services) -> Catalog:
    catalog = await svc.catalog.get()
    if catalog is None:
        raise errors.unavailable(
            "The model catalog is not available yet: no worker has published it.",
            code="no_catalog",
        )
    return catalog


def _find(catalog: Catalog, name: str) -> Model:
    model = catalog.find(name)
    if model is None:
        raise errors.model_not_found(name)
    return model


def _model_object(model: Model, catalog: Catalog) -> dict[str, Any]:
    return {
        "id": model.public_name,
        "object": "model",
        "created": int(catalog.updated_at),
        "owned_by": model.organization or "anonymous",
    }
