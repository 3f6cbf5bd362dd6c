"""The completion core every API shares: a neutral request → a queued job → its events.

OpenAI chat, Anthropic Messages and OpenAI Responses translate their request into a
`CompletionRequest`, `submit` it, and render the job's events in their own shapes: collected
(`complete`) or as SSE frames (`stream`, with the API's `Frames`). Between the job and the
renderer, `gateway.answers.shaping` applies what the request asks beyond text (tool calls, stop
sequences, a length limit); an answer it shapes is remembered by the gateway, as the client saw
it, for the conversation's next turn (the worker remembers the others).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import time
import uuid
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson
from fastapi import Request
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask

from gateway.access.caller import caller
from gateway.answers import battle, json_mode, resume
from gateway.answers.job_handle import CONTENT, Entry, JobHandle
from gateway.answers.json_mode import JsonFormat
from gateway.answers.shaping import Rules, Shaper
from gateway.answers.tools import contract
from gateway.answers.tools.definitions import ToolUse
from gateway.conversations.continuation import Conversations, Plan
from gateway.conversations.image_inputs import ImageSource, ImageStore
from gateway.conversations.transcript import (
    MAX_PROMPT_CHARS,
    Turn,
    check_length,
    joined_answers,
    render,
    require_user,
)
from gateway.fleet import aliases
from gateway.fleet.catalog_view import Catalog
from gateway.fleet.heartbeats import describe_unready
from gateway.http import errors, sse
from gateway.http.disconnect import unless_disconnected
from gateway.http.drain import Drain
from gateway.http.errors import ApiError
from gateway.http.services import Services
from shared import threads
from shared.events import Event
from shared.fleet.worker_status import read_fleet
from shared.jobs import CompletionJob

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    """What every API asks for, in its own words: a model, a conversation, streamed or not."""

    model: str
    turns: Sequence[Turn]
    stream: bool = False
    #: Where the turns are in the client's request (`messages`, `input`), for error messages.
    param: str = "messages"
    #: Fetch generated images' bytes (the arena's image URLs expire).
    image_bytes: bool = False
    #: Continue the arena thread of a conversation the bridge answered before.
    conversation: bool = True
    #: The client's tools and how the model may call them.
    tools: ToolUse | None = None
    #: Where the answer is cut: the client's stop sequences, its token limit.
    stop: Sequence[str] = field(default_factory=tuple)
    max_tokens: int | None = None
    #: JSON mode: the answer must be a JSON object (matching a schema, if given).
    json: JsonFormat | None = None

    @property
    def rules(self) -> Rules:
        calls = [call for turn in self.turns for call in turn.calls]
        return Rules(self.tools, self.stop, self.max_tokens, calls, self.json)

    @property
    def asks(self) -> list[Turn]:
        """What this turn asks of the model beyond the conversation, after it."""
        asked = [
            contract.reminder(self.tools) if self.tools is not None else None,
            json_mode.instruction(self.json) if self.json is not None else None,
        ]
        return [Turn("system", text) for text in asked if text]


class Frames(Protocol):
    """One API's SSE rendering of a streamed answer, event by event."""

    def start(self) -> bytes:
        """The first frames, sent once the answer has begun."""

    def event(self, event: Event) -> bytes:
        """Frames for one event; empty when it shows nothing to the client."""

    def keepalive(self) -> bytes:
        """What keeps the connection open while the answer is silent."""

    def end(self) -> bytes:
        """The closing frames of an answer that finished."""

    def error(self, error: ApiError) -> bytes:
        """The closing frames of an answer that failed after the 200 went out."""


async def submit(request: Request, svc: Services, body: CompletionRequest) -> JobHandle:
    """Queue the job for `body` and hand back its handle.

    Everything the client can be told off for (prompt, model, images) is checked before
    anything is queued; then it waits for a worker that can serve. A conversation the bridge
    has answered before continues its arena thread (see `gateway.conversations.continuation`).
    """
    handle, _ = await _submit(request, svc, body)
    return handle


async def _submit(
    request: Request, svc: Services, body: CompletionRequest
) -> tuple[JobHandle, Plan]:
    settings = svc.settings
    client = caller(request)
    again = resume.reading(request)
    idempotency_key = request.headers.get(resume.IDEMPOTENCY_HEADER)
    if again is None and idempotency_key:
        again = await resume.earlier(request, svc.redis, client.key_id, idempotency_key)
    if again is not None:  # an answer asked for before: read again, the arena not asked twice
        await client.admit(again.job.model)
        handle = _handle(svc, again.job, observe=client.track(again.job))
        handle.attach()
        return handle, Plan("create", None, body.turns, remember=None)
    body = dataclasses.replace(body, turns=joined_answers(body.turns))
    turns = body.turns
    require_user(turns, param=body.param)
    served = await catalog(svc, body.model)
    lineup = battle.lineup(served, aliases.resolve(body.model, served, settings.model_aliases))
    images = [(turn_index, image) for turn_index, t in enumerate(turns) for image in t.images]
    for model in lineup.models:
        if images and not model.accepts_images:
            raise errors.invalid(
                f"The model `{model.public_name}` does not take image input.", param=body.param
            )
    await client.admit(
        lineup.a.public_name if lineup.mode == "direct" else body.model,
        uses=[model.public_name for model in lineup.models],
    )
    job_id = uuid.uuid4().hex
    if idempotency_key and not await resume.claim(
        svc.redis, client.key_id, idempotency_key, job_id, settings.events_ttl_seconds
    ):
        raise ApiError(
            409,
            "A request with this Idempotency-Key is being started; send it again in a moment.",
            code="idempotency_conflict",
            headers={"Retry-After": "1"},
        )
    conversations = Conversations(svc.redis, ttl_s=settings.conversation_ttl_seconds)
    if lineup.mode == "direct" and body.conversation:
        key_id = client.key.id if client.key is not None else None
        scope = threads.scope(lineup.a.public_name, key_id)
        if body.tools is not None:  # the contract opens the thread: other tools, other thread
            scope = threads.extend(scope, "tools", body.tools.digest())
        plan = await conversations.plan(
            scope,
            turns,
            model=lineup.a.public_name,
            job_id=job_id,
        )
    else:  # a battle's two answers cannot both continue one thread; nor may n images
        plan = Plan("create", None, turns, remember=None)
    try:
        job = await _job(svc, body, lineup, plan, job_id, images, owner=client.key_id)
        expected_wait = await unless_disconnected(request.receive, svc.queue.admit(job, body.model))
    except BaseException:
        await conversations.release(plan, job_id)
        raise
    handle = _handle(svc, job, observe=client.track(job))
    handle.expected_wait_s = expected_wait
    await resume.keep(
        svc.redis,
        job,
        key_id=client.key_id,
        route=request.url.path,
        body=await request.body() if body.stream else None,
        ttl_s=round(settings.job_timeout_seconds) + settings.events_ttl_seconds,
    )
    await handle.submit()
    log.info(
        "job %s queued: model=%s action=%s stream=%s", job.id, job.model, job.action, body.stream
    )
    return handle, plan


def _handle(
    svc: Services, job: CompletionJob, observe: Callable[[list[Event]], None] | None = None
) -> JobHandle:
    settings = svc.settings
    return JobHandle(
        svc.redis,
        svc.pool,
        job,
        reads=svc.reads,
        timeout_s=settings.job_timeout_seconds,
        events_ttl_s=settings.events_ttl_seconds,
        owner_wait_s=settings.worker_wait_seconds,
        observe=observe,
        queue=svc.queue,
        queue_wait_s=settings.queue_max_wait_seconds,
        on_taken=svc.metrics.queue_wait_seconds.observe,
    )


async def _job(
    svc: Services,
    body: CompletionRequest,
    lineup: battle.Lineup,
    plan: Plan,
    job_id: str,
    images: list[tuple[int, ImageSource]],
    *,
    owner: str,
) -> CompletionJob:
    settings = svc.settings
    merge = settings.merge_system_messages
    tools = body.tools
    reminder = body.asks
    # The whole conversation, for a new session (or the one a refused post falls back to),
    # the tool contract first: a thread with tools starts with it.
    prompt = render([*body.turns, *reminder], merge_system=merge)
    rules = ""
    if tools is not None and tools.tools:
        # The tags around the contract's block, and the blank line after it.
        room = MAX_PROMPT_CHARS - len(prompt) - len("<system>\n\n</system>\n\n")
        rules = contract.fitted(tools.tools, room)
        prompt = render([Turn("system", rules), *body.turns, *reminder], merge_system=merge)
    message = None
    first_new = len(body.turns) - len(plan.turns)
    if plan.action == "post":
        message = render([*plan.turns, *reminder], merge_system=merge)
        check_length(message, param=body.param)
    elif plan.action == "create":
        check_length(prompt, param=body.param, contract_chars=len(rules))
    refs = await ImageStore(svc.redis, settings).put(
        [(image, turn_index >= first_new) for turn_index, image in images], owner=owner
    )
    return CompletionJob(
        id=job_id,
        model=body.model if lineup.b is not None else lineup.a.public_name,
        model_id=lineup.a.id,
        model_b_id=lineup.b.id if lineup.b is not None else None,
        modality=lineup.a.modality,
        mode=lineup.mode,
        action=plan.action,
        thread=plan.thread,
        prompt=prompt,
        message=message,
        images=refs,
        # An answer the gateway shapes is remembered by the gateway, as the client saw it.
        remember=None if body.rules.shapes else plan.remember,
        fetch_images=body.image_bytes,
        created_at=time.time(),
    )


async def answer(
    request: Request,
    svc: Services,
    ask: CompletionRequest,
    *,
    frames: Callable[[CompletionJob], Frames],
    whole: Callable[[CompletionJob, list[Event]], Mapping[str, Any]],
    keep: Callable[[CompletionJob, Turn], Awaitable[None]] | None = None,
) -> Response:
    """The answer to `ask` in one API's shapes: streamed as its `frames`, or `whole`.

    `keep` is given the answer as a turn (its text and calls) once it is complete.
    """
    handle, plan = await _submit(request, svc, ask)
    rules = ask.rules
    shaper = Shaper(rules)

    async def answered() -> None:
        turn = Turn("assistant", shaper.shown, calls=tuple(shaper.calls))
        if rules.shapes and plan.remember is not None and shaper.session is not None:
            conversations = Conversations(svc.redis, ttl_s=svc.settings.conversation_ttl_seconds)
            await conversations.remember(
                plan.remember, shaper.session, handle.job.model, turn.identity
            )
        if keep is not None:
            await keep(handle.job, turn)

    if ask.stream:
        return await stream(request, svc, handle, frames(handle.job), shaper, answered)
    events = await complete(request, svc, handle, shaper)
    await answered()
    return Response(orjson.dumps(whole(handle.job, events)), media_type="application/json")


async def complete(
    request: Request, svc: Services, handle: JobHandle, shaper: Shaper | None = None
) -> list[Event]:
    """Every event of a non-streamed answer, shaped; the error as an `ApiError` if it failed."""
    try:
        events = await unless_disconnected(
            request.receive, _collect(svc, handle, shaper or Shaper(Rules()))
        )
    finally:
        await handle.abandon()
    _raise_error(events)
    return events


async def stream(
    request: Request,
    svc: Services,
    handle: JobHandle,
    frames: Frames,
    shaper: Shaper,
    answered: Callable[[], Awaitable[None]],
) -> StreamingResponse:
    """The streamed answer as SSE, shaped by `shaper`, rendered by `frames`; `answered` runs
    before the closing frames of an answer that did not fail.

    The 200 is held back briefly, so that a failure before the first token gets a real status;
    but not while the request is sure to wait longer for an account: clients give up on a
    response that does not start. The 200 then goes out at once with where the request stands
    in the queue (an SSE comment, which every client skips), again at each keep-alive while it
    waits; if no account takes it in time, the stream ends with the API's error event.
    """
    hold = svc.settings.first_event_wait_seconds
    if handle.expected_wait_s > hold:
        hold = 0.0
    try:
        early = await unless_disconnected(request.receive, handle.first(hold))
    except BaseException:
        await handle.abandon()
        raise
    _raise_error(_before_content([entry.event for entry in early]))
    again = resume.reading(request)
    numbering = sse.Numbering(again.after if again is not None else None)
    body = _frames(svc, handle, frames, early, shaper, answered, numbering, request.app.state.drain)
    # The disconnect may cancel the body while it is parked at a `yield`; closing the
    # generator afterwards runs its cleanup (cancelling the job) in that case too.
    return StreamingResponse(
        body,
        media_type="text/event-stream",
        headers=sse.HEADERS,
        background=BackgroundTask(body.aclose),
    )


async def catalog(svc: Services, wanting: str | None = None) -> Catalog:
    """The model catalog (the live workers'), or a 503 while there is none.

    `wanting`: the model the request names, so that a view without it is read again first.
    """
    found = await svc.catalog.get(wanting)
    if found is None:
        if not (fleet := await read_fleet(svc.redis)):
            raise errors.unavailable(describe_unready(fleet), code="no_worker")
        raise errors.unavailable(
            "The model catalog is not available yet: no worker has published it.",
            code="no_catalog",
        )
    return found


async def _collect(
    svc: Services, handle: JobHandle, shaper: Shaper, early: Sequence[Event] = ()
) -> list[Event]:
    events = shaper.feed(early)
    async with contextlib.aclosing(_shaped(svc, handle, shaper)) as batches:
        async for batch in batches:
            events += [entry.event for entry in batch or []]
    return events


async def _shaped(
    svc: Services, handle: JobHandle, shaper: Shaper
) -> AsyncGenerator[list[Entry] | None, None]:
    """The rest of the answer, shaped, in batches (None: a keep-alive's worth of silence).

    It ends once the client's answer is complete (the arena's is stopped when it is cut short).
    An answer that must be asked again (JSON mode) is followed by its retry's, in the same
    arena thread, its entries named after the retry (`gateway.http.sse.EventId.again`).
    """
    current = handle
    again = 0
    try:
        while not shaper.cut:
            if shaper.retry is None:
                async with contextlib.aclosing(
                    current.rest(svc.settings.keepalive_seconds)
                ) as rest:
                    # An answer to ask again is read to its end: it is over, not to be stopped.
                    async for batch in rest:
                        yield _shape(shaper, batch, again) if batch else None
                        if shaper.cut:
                            break
            if shaper.retry is None:
                return
            await current.abandon()
            current = await _retry(svc, handle.job, shaper)
            again += 1
    finally:
        if current is not handle:
            await current.abandon()


def _shape(shaper: Shaper, batch: Sequence[Entry], again: int = 0) -> list[Entry]:
    """`batch` shaped one entry at a time, each event shaped named after the entry it came
    from: the same entries give the same events on any gateway, however they were read."""
    shaped = []
    for entry_id, event in batch:
        name = f"{again}:{entry_id}" if again else entry_id
        shaped += [Entry(name, out) for out in shaper.feed([event])]
    return shaped


async def _retry(svc: Services, asked: CompletionJob, shaper: Shaper) -> JobHandle:
    """The job that asks the answer again, in its arena thread, telling the model why; the
    one asked before, when the answer is read again."""
    session, why = shaper.session, shaper.retry
    assert session is not None and why is not None
    thread = threads.Thread(
        worker=session["worker"],
        session_id=session["session"],
        message_id=session["messages"]["a"],
        model=asked.model,
        messages=0,  # nothing remembers this thread by it
    )
    earlier = await resume.retried(svc.redis, asked.id)
    job = asked.model_copy(
        update={
            "id": earlier or uuid.uuid4().hex,
            "action": "post",
            "thread": thread,
            "message": why,
            "images": [image.model_copy(update={"new": False}) for image in asked.images],
            "remember": None,
        }
    )
    handle = _handle(svc, job)
    shaper.restart()
    if earlier is not None:
        handle.attach()
        return handle
    await resume.retrying(svc.redis, asked.id, job.id)
    await handle.submit()
    log.info("job %s: the answer is asked again as job %s", asked.id, job.id)
    return handle


async def _frames(
    svc: Services,
    handle: JobHandle,
    frames: Frames,
    early: list[Entry],
    shaper: Shaper,
    answered: Callable[[], Awaitable[None]],
    numbering: sse.Numbering,
    drain: Drain,
) -> AsyncGenerator[bytes, None]:
    """Every frame with its `id:` (see `gateway.http.sse.EventId`); a client reading again
    gets those after the one it names."""
    try:
        # Started before the early events are rendered: frames number and snapshot what they send.
        head = numbering(frames.start(), sse.HEAD)
        rendered, failure = _render(frames, _shape(shaper, early), numbering)
        where = await handle.progress() if failure is None else None
        yield head + rendered + (sse.comment(where) if where is not None else b"")
        # An error is the last event the handle hands over, so the loop ends with it.
        if failure is None:
            wrote = time.monotonic()
            async with contextlib.aclosing(_shaped(svc, handle, shaper)) as batches:
                async for batch in batches:
                    # One write per batch: a backlog of tokens goes out together.
                    rendered, failure = _render(frames, batch or [], numbering)
                    silent = time.monotonic() - wrote >= svc.settings.keepalive_seconds
                    if not rendered and (batch is None or silent):
                        # Silence, or text held back as long (a long tool call being read);
                        # while no worker has taken the job, where it stands in the queue.
                        where = await handle.progress()
                        rendered = sse.comment(where) if where is not None else frames.keepalive()
                    if rendered:
                        wrote = time.monotonic()
                        yield rendered
                    if failure is not None:
                        break
        if failure is None:
            await answered()
            yield numbering(frames.end())
        else:
            log.info("job %s failed after the first byte: %s", handle.job.id, failure["kind"])
    finally:
        # A stream cut as its gateway stops is read on elsewhere: its job goes on.
        if not drain.cutting:
            await handle.abandon()


def _render(
    frames: Frames, batch: list[Entry], numbering: sse.Numbering
) -> tuple[bytes, Event | None]:
    """The frames for `batch`, and its error event if it ended in one (rendered as the end)."""
    rendered = b""
    for entry_id, event in batch:
        if event["t"] == "error":
            return rendered + numbering(frames.error(errors.from_event(event)), entry_id), event
        rendered += numbering(frames.event(event), entry_id)
    return rendered, None


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
