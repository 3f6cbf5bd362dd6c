"""One completion job: the arena request run in the page, its answer relayed as events.

Events go to the job's Redis Stream (`shared.storage.redis_keys.job_events`), each network chunk's worth in
one pipeline. Every job ends with `done` unless it was handed to another worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from arq.connections import ArqRedis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared import events
from shared.arena import payloads
from shared.arena.errors import (
    ArenaError,
    AuthRequired,
    Challenge,
    PromptRefused,
    RateLimited,
    RecaptchaRejected,
    account_verdict,
    classify,
    mode_refused,
)
from shared.arena.ids import uuid7, uuid7_ascending
from shared.arena.stream import LineParser, Part, to_events
from shared.events import Event
from shared.fleet import counters
from shared.fleet.worker_status import WorkerState, WorkerStatus, read_fleet
from shared.jobs import CompletionJob
from shared.settings import Settings
from shared.storage import job_queue, redis_keys
from shared.storage.outage import RedisOutage
from shared.threads import Thread, remembered
from worker.account_gate import AccountGate
from worker.arena.chat_sweeper import ChatSweeper
from worker.arena.learned import Learned, token_tries
from worker.arena.token_pool import Tokens
from worker.arena.uploads import UploadFailed, Uploads
from worker.browser.cdp import CDPError
from worker.browser.page import ArenaPage, FetchFailed, PageError, PageFetch
from worker.queue_worker import clear
from worker.state import StateMachine

logger = logging.getLogger(__name__)

#: Events after which an answer is over.
ENDINGS = frozenset({"finish", "error"})
#: When the arena gives no retry-after for a 429.
DEFAULT_RATE_LIMIT_S = 60.0
_STOP_WAIT_S = 5.0
#: What a flagged account's call alone is called at its pacing gate (no job makes it).
_PROBE = "call alone"


@dataclass(frozen=True, slots=True)
class RequestIds:
    """Ids of one attempt; the arena refuses ids it has seen, so every attempt gets new ones."""

    session: str
    user_message: str | None
    model_a_message: str
    model_b_message: str | None

    @classmethod
    def fresh(cls, job: CompletionJob) -> RequestIds:
        """New message ids (and session, for a create); a retry regenerates the thread's own."""
        thread = job.thread
        if job.action == "retry" and thread is not None:
            return cls(thread.session_id, None, thread.message_id, None)
        session = thread.session_id if job.action == "post" and thread is not None else uuid7()
        user, model_a, *model_b = uuid7_ascending(3 if job.model_b_id else 2)
        return cls(session, user, model_a, model_b[0] if model_b else None)

    def messages(self) -> dict[str, str]:
        """The model message ids by side."""
        sides = {"a": self.model_a_message}
        if self.model_b_message is not None:
            sides["b"] = self.model_b_message
        return sides


def build_request(
    job: CompletionJob,
    ids: RequestIds,
    token: str,
    attachments: Sequence[Mapping[str, str]] = (),
    *,
    mode: str | None = None,
) -> payloads.ArenaRequest:
    """The arena request for the job's action, with these ids and images; a create goes out in
    `mode` (the site's name for it: a one-model chat is `direct-battle` or `direct`)."""
    if job.action == "retry":
        return payloads.retry_message(
            session_id=ids.session, model_message_id=ids.model_a_message, token=token
        )
    if ids.user_message is None:
        raise ValueError("a create or post needs a user message id")
    post = job.action == "post"
    turn = payloads.UserTurn(
        session_id=ids.session,
        model_a_id=job.model_id,
        user_message_id=ids.user_message,
        model_a_message_id=ids.model_a_message,
        content=job.message if post and job.message is not None else job.prompt,
        modality=job.modality,
        token=token,
        model_b_id=job.model_b_id,
        model_b_message_id=ids.model_b_message,
        attachments=attachments,
    )
    if post:
        return payloads.post_to_evaluation(turn)
    return payloads.create_evaluation(turn, mode=mode or job.mode)


def stop_requests(ids: RequestIds) -> list[payloads.ArenaRequest]:
    """What stops an attempt's answers in the arena: each side's, in a battle."""
    return [
        payloads.stop(session_id=ids.session, model_message_id=message)
        for message in ids.messages().values()
    ]


def thread_gone(error: ArenaError) -> bool:
    """The arena refused a post or retry because the session is gone or not this account's."""
    if isinstance(error, AuthRequired):
        return not error.login_gate
    return error.status == 404


@dataclass
class Relayed:
    """What one answer came to, as the worker relayed it."""

    #: The events that end the stream (not yet written).
    tail: list[Event] = field(default_factory=list)
    #: Side a's text, as the client received it.
    texts: list[str] = field(default_factory=list)
    ended: bool = False
    failed: bool = False

    def add(self, batch: Iterable[Event]) -> None:
        for event in batch:
            kind = event["t"]
            if kind == "text" and event["side"] == "a":
                self.texts.append(event["text"])
            elif kind in ("error", "side_failed"):
                self.failed = True
            self.ended = self.ended or kind in ENDINGS

    @property
    def complete(self) -> bool:
        return self.ended and not self.failed


def events_of(parts: Iterable[Part], *, battle: bool = False) -> list[Event]:
    """The events of `parts`. A side's failure fails a direct answer; in a battle it ends only
    that side, and the other answers on."""
    found = [event for part in parts for event in to_events(part)]
    if battle:
        return found
    return [events.error("upstream", e["message"]) if e["t"] == "side_failed" else e for e in found]


def first_free_in(statuses: Iterable[WorkerStatus], now: float) -> float | None:
    """Seconds until the first cooling account rests no more; None if none is cooling."""
    ends = [s.until for s in statuses if s.state is WorkerState.COOLING and s.until is not None]
    return max(0.0, min(ends) - now) if ends else None


def pick_peer(statuses: Iterable[WorkerStatus], *, excluded: Iterable[str]) -> WorkerStatus | None:
    """Another worker to hand a job to: serving, not excluded, the least loaded first."""
    skip = set(excluded)
    candidates = [s for s in statuses if s.serving and s.id not in skip]
    return min(
        candidates,
        key=lambda s: (s.state is not WorkerState.READY, s.busy / max(s.capacity, 1), s.id),
        default=None,
    )


class JobStream:
    """The job's event stream, as this attempt writes it, in order, exactly once.

    Each event gets its entry id from here, `<attempt>-<n>`: ids grow across attempts (a job's
    next attempt starts above the last), and a write that Redis took but whose reply was lost
    (Redis restarting) is written again harmlessly, as Redis refuses an id it has. While Redis
    is away, writes wait for it, in order, so that the client gets every event once it is back.
    The stream lives as long as the job may run, then `ttl_s` once it ends.
    """

    def __init__(
        self, redis: ArqRedis, job_id: str, attempt: int, *, ttl_s: int, running_ttl_s: int
    ) -> None:
        self._redis = redis
        self._key = redis_keys.job_events(job_id)
        self._request_key = redis_keys.job_request(job_id)
        self._attempt = attempt
        self._ttl_s = ttl_s
        self._running_ttl_s = running_ttl_s
        self._written = 0
        self._numbered = True
        self._writing: asyncio.Task[None] | None = None

    def follow(self, last_id: str) -> None:
        """Write after `last_id`, an entry already in the stream: this attempt ran before (its
        worker died unseen, and arq runs it again)."""
        ms, _, seq = last_id.partition("-")
        if int(ms) == self._attempt:
            self._written = max(self._written, int(seq))
        elif int(ms) > self._attempt:  # written by another hand: Redis numbers what follows
            self._numbered = False

    def post(self, batch: Sequence[Event]) -> None:
        """Write `batch` without waiting; later writes wait for it, so order is kept."""
        self._writing = asyncio.create_task(self._write_after(self._writing, batch))

    async def add(self, batch: Sequence[Event]) -> None:
        await self.flush()
        await self._write(batch)

    async def close(self, *last: Event) -> None:
        """Append `last` and `done`, and let the stream expire once readers had their time."""
        await self.flush()
        await self._write((*last, events.done()), ending=True)

    async def past(self) -> list[Event]:
        await self.flush()
        return [events.decode(fields) for _, fields in await self._redis.xrange(self._key)]

    async def flush(self) -> None:
        """Wait for a write started with `post`."""
        if self._writing is not None:
            writing, self._writing = self._writing, None
            await writing

    async def _write_after(
        self, previous: asyncio.Task[None] | None, batch: Sequence[Event]
    ) -> None:
        if previous is not None:
            await previous
        await self._write(batch)

    async def _write(self, batch: Sequence[Event], *, ending: bool = False) -> None:
        first = self._written + 1
        self._written += len(batch)
        ttl_s = None
        if ending:
            ttl_s = self._ttl_s
        elif first == 1:
            ttl_s = self._running_ttl_s  # a job whose worker dies leaves no stream for ever
        entries = [
            (f"{self._attempt}-{first + n}" if self._numbered else "*", events.encode(e))
            for n, e in enumerate(batch)
        ]
        outage = RedisOutage(f"job stream {self._key}")
        while True:
            try:
                await self._send(entries, ttl_s, ending=ending)
                return
            except (RedisConnectionError, RedisTimeoutError, OSError) as exc:
                await outage.wait(exc)

    async def _send(
        self, entries: list[tuple[str, Any]], ttl_s: int | None, *, ending: bool
    ) -> None:
        if len(entries) == 1 and ttl_s is None:  # most chunks: a plain command costs less
            entry_id, fields = entries[0]
            try:
                await self._redis.xadd(self._key, fields, id=entry_id)
            except ResponseError as exc:
                _written_before(exc)
            return
        async with self._redis.pipeline(transaction=False) as pipe:
            for entry_id, fields in entries:
                pipe.xadd(self._key, fields, id=entry_id)
            if ttl_s is not None:
                pipe.expire(self._key, ttl_s)
            if ending:  # what the job was asked with goes with its events
                pipe.expire(self._request_key, self._ttl_s)
            for result in await pipe.execute(raise_on_error=False):
                if isinstance(result, ResponseError):
                    _written_before(result)
                elif isinstance(result, Exception):
                    raise result


def _written_before(error: ResponseError) -> None:
    """An entry Redis refuses because its id is not above the last one's: it is there already
    (a write retried after a lost reply), or the stream was ended for this attempt (its worker
    was taken for dead); either way there is nothing left to write."""
    if "equal or smaller" not in str(error):
        raise error


class Completion:
    """The arq function `shared.storage.job_queue.COMPLETE`, bound to this worker's page."""

    def __init__(
        self,
        *,
        worker_id: str,
        settings: Settings,
        redis: ArqRedis,
        page: Callable[[], ArenaPage],
        tokens: Callable[[], Tokens],
        machine: StateMachine,
        on_blocked: Callable[[ArenaError], None],
        learned: Learned | None = None,
        chats: ChatSweeper | None = None,
        gate: AccountGate | None = None,
    ) -> None:
        self._id = worker_id
        self._settings = settings
        self._redis = redis
        self._page = page
        self._tokens = tokens
        self._machine = machine
        self._uploads = Uploads(redis)
        #: Told of a Cloudflare check or a sign-in gate, so that a person can clear it.
        self._on_blocked = on_blocked
        #: The arena rate limits this account's images (not its chats) until then.
        self._images_limited_until = 0.0
        #: The mode new chats go out in and the token actions the site takes, as found so far.
        self._learned = learned or Learned()
        #: Deletes the account's arena chats once forgotten (LMB_DELETE_CHATS); None: kept.
        self._chats = chats
        #: Paces the account's stream calls, every one of them (None: no pace).
        self._gate = gate or AccountGate(None, lambda: worker_id)
        #: Stream calls this account has made since the worker started (probes included).
        self.calls = 0

    async def run(self, ctx: dict[str, Any], payload: dict[str, Any]) -> None:
        job = CompletionJob.model_validate(payload)
        settings = self._settings
        stream = JobStream(
            self._redis,
            job.id,
            job.attempt,
            ttl_s=settings.events_ttl_seconds,
            running_ttl_s=round(settings.job_timeout_seconds) + settings.events_ttl_seconds,
        )
        if not clear(ctx) and not await self._may_start(job, stream):
            return

        if not self._machine.serving and await self._requeue(job, "this worker is not serving"):
            return  # claimed just as it stopped serving (a check, a restart): the next one takes it
        if await self._images_limited(job, stream) or await self._refused_here(job, stream):
            return

        # Written while the request starts: the answer cannot overtake it (JobStream keeps order).
        stream.post([events.accepted(self._id, job.attempt)])
        try:
            async with asyncio.timeout(self._settings.job_timeout_seconds):
                with self._machine.slot():
                    last = await self._serve(job, stream)
        except TimeoutError:
            last = [events.error("timeout", "the answer took longer than the job timeout")]
        except asyncio.CancelledError:
            try:
                await asyncio.wait_for(self._cancelled(job, stream), _STOP_WAIT_S)
            except Exception as exc:
                logger.warning("job %s: could not record its cancellation: %s", job.id, exc)
            raise
        except (ConnectionError, FetchFailed) as exc:  # the browser died or left the page
            last = await self._lost(job, stream, exc)
        except (
            Exception
        ) as exc:  # the browser or Redis failed under us: the client still gets an end
            logger.exception("job %s failed", job.id)
            last = [events.error("internal", f"the worker failed: {type(exc).__name__}: {exc}")]
        # Shielded: a cancel that comes as the answer ends must not leave it without its end.
        if last is None:
            await asyncio.shield(stream.flush())  # handed to another worker: it writes the rest
        else:
            await asyncio.shield(stream.close(*last))

    async def _may_start(self, job: CompletionJob, stream: JobStream) -> bool:
        """False, with the stream ended as needed, if the job was cancelled or ran before."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.exists(redis_keys.job_cancel(job.id))
            pipe.xrange(redis_keys.job_events(job.id))
            cancelled, entries = await pipe.execute()
        if entries:
            stream.follow(entries[-1][0].decode())
        if cancelled:
            await stream.close(
                events.error("cancelled", "the request was cancelled before it started")
            )
            return False
        past = {events.decode(fields)["t"] for _, fields in entries}
        if "done" in past:
            return False
        if past & events.CONTENT:
            # A worker died mid-answer and arq handed the job on: never stream an answer twice.
            await stream.close(
                events.error("worker_lost", "the worker serving this request stopped")
            )
            return False
        return True

    async def _serve(self, job: CompletionJob, stream: JobStream) -> list[Event] | None:
        """Run the request; returns the events that end the stream, or None once handed off."""
        if job.action != "create" and (job.thread is None or job.thread.worker != self._id):
            job = job.as_new_session()  # only the account that opened a session may continue it
        page = self._page()
        outcome = await self._request(page, job, stream)
        if isinstance(outcome, ArenaError) and job.action != "create" and thread_gone(outcome):
            # Never an error for the client: the conversation goes on in a new session.
            logger.info(
                "job %s: the arena refused the %s (%s); starting a new session",
                job.id,
                job.action,
                outcome.message,
            )
            job = job.as_new_session()
            outcome = await self._request(page, job, stream)
        if isinstance(outcome, ArenaError):
            return await self._failed(job, outcome)
        return outcome

    async def _request(
        self, page: ArenaPage, job: CompletionJob, stream: JobStream
    ) -> list[Event] | ArenaError:
        """The job's request, with its images uploaded.

        A new one-model chat goes out in the mode the site took last (else the likeliest), and
        in the next one if the site refuses that mode; a refused token is replaced (with one of
        another action, if the site may want that). What worked is tried first from then on.
        """
        try:
            attachments = await self._uploads.attachments(page, job.sent_images())
        except UploadFailed as exc:
            return [events.error("upstream", f"could not upload the image to the arena: {exc}")]
        chat = job.action == "create" and job.mode == "direct"
        modes = self._learned.chat_mode.order() if chat else [job.mode]
        for mode in modes:
            outcome = await self._with_tokens(page, job, stream, attachments, mode)
            if isinstance(outcome, ArenaError) and chat and mode_refused(outcome):
                logger.info("job %s: the arena refused mode %s (%s)", job.id, mode, outcome.message)
                continue
            if chat and not isinstance(outcome, ArenaError):
                self._learned.chat_mode.confirm(mode)
            return outcome
        return outcome

    async def _with_tokens(
        self,
        page: ArenaPage,
        job: CompletionJob,
        stream: JobStream,
        attachments: Sequence[Mapping[str, str]],
        mode: str,
    ) -> list[Event] | ArenaError:
        """One request, sent again with a new token while the arena refuses the token."""
        tokens = self._tokens()
        actions = self._learned.token_actions[job.action]
        candidates = actions.order()
        refused: RecaptchaRejected | None = None
        for action, fresh in token_tries(candidates):
            if refused is not None and not self._machine.serving:
                return refused  # flagged by another answer meanwhile: nothing more is sent
            token = functools.partial(tokens.mint if fresh else tokens.take, action)
            outcome = await self._attempt(page, job, token, stream, attachments, mode)
            if not isinstance(outcome, RecaptchaRejected):
                if not isinstance(outcome, ArenaError):
                    actions.confirm(action)
                return outcome
            refused = outcome
            # Only a token of the action the site takes says anything of the account.
            known = len(candidates) == 1 or actions.worked == action
            if account_verdict(outcome, fresh_token=fresh and known) == "flagged":
                self._machine.flag(
                    f"the arena refused a fresh reCAPTCHA token ({outcome.message}): its"
                    " security check flagged the account",
                    now=time.time(),
                )
                return outcome
            logger.info("job %s: reCAPTCHA token (%s) refused; trying a new one", job.id, action)
        assert refused is not None  # there is always a token to try
        return refused

    async def _attempt(
        self,
        page: ArenaPage,
        job: CompletionJob,
        token: Callable[[], Awaitable[str]],
        stream: JobStream,
        attachments: Sequence[Mapping[str, str]],
        mode: str,
    ) -> list[Event] | ArenaError:
        """One request with fresh ids, once the account's pacing lets it go: the events that
        end it, or why the arena refused it."""
        ids = RequestIds.fresh(job)
        paced_token = await self._gate.call(job.id, token)
        request = build_request(job, ids, paced_token, attachments, mode=mode)
        self.calls += 1
        try:
            async with page.fetch(request) as fetch:
                head = await fetch.head()
                await self._gate.sent(job.id)
                if head.status != 200:
                    refused = classify(head.status, head.headers, await fetch.text())
                    if not mode_refused(refused):  # not an error: the next mode is tried
                        await counters.arena_error(self._redis, refused.kind)
                    return refused
                stream.post([events.session(self._id, job.action, ids.session, ids.messages())])
                in_session = (
                    self._chats.using(ids.session) if self._chats else contextlib.nullcontext()
                )
                async with in_session:
                    relayed = await self._relay(page, job, fetch, stream)
                    if relayed.failed:
                        await counters.arena_error(self._redis, "upstream")
                    if relayed.complete and job.remember is not None:
                        await self._remember(job, ids, "".join(relayed.texts))
                return relayed.tail
        except asyncio.CancelledError:
            await self._stop(page, ids)
            raise

    async def _relay(
        self, page: ArenaPage, job: CompletionJob, fetch: PageFetch, stream: JobStream
    ) -> Relayed:
        parser = LineParser()
        relayed = Relayed()
        battle = job.model_b_id is not None
        try:
            async for text in fetch.chunks():
                batch = events_of(parser.feed(text), battle=battle)
                if batch:
                    if job.fetch_images:
                        batch = await self._with_bytes(page, batch)
                    relayed.add(batch)
                    await stream.add(batch)
        except FetchFailed as exc:
            relayed.tail = [
                *events_of(parser.close(), battle=battle),
                events.error("upstream", f"the arena stream broke off: {exc}"),
            ]
            relayed.failed = True
            return relayed
        relayed.tail = events_of(parser.close(), battle=battle)
        relayed.add(relayed.tail)
        if not relayed.ended:
            relayed.tail.append(
                events.error("upstream", "the arena ended the answer without finishing it")
            )
            relayed.failed = True
        return relayed

    async def _with_bytes(self, page: ArenaPage, batch: list[Event]) -> list[Event]:
        """`batch` with each generated image's bytes, read by the page while its URL is signed."""
        out = []
        for event in batch:
            if event["t"] == "image":
                try:
                    status, media_type, data = await page.read(event["url"])
                except PageError as exc:  # the storage refused the page (CORS, network)
                    status, media_type, data = 0, "", str(exc)
                if status == 200:
                    event = events.image(
                        event["side"], event["url"], event["mime_type"] or media_type, data
                    )
                else:  # the event goes on without bytes; the API says what it lacks
                    logger.warning("could not read a generated image: %s", status or data)
            out.append(event)
        return out

    async def _remember(self, job: CompletionJob, ids: RequestIds, text: str) -> None:
        """Record where the answer lives, so that the conversation's next turn continues it."""
        remember = job.remember
        if remember is None:
            return
        thread = Thread(
            worker=self._id,
            session_id=ids.session,
            message_id=ids.model_a_message,
            model=job.model,
            messages=remember.messages + 1,
        )
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                for key, value in remembered(remember, thread, text).items():
                    pipe.set(key, value, ex=remember.ttl_s)
                await pipe.execute()
        except (
            RedisError,
            OSError,
        ) as exc:  # the answer is out; the next turn starts a new session
            logger.warning("job %s: could not remember its arena thread: %s", job.id, exc)

    async def probe(self, v2_token: str | None = None) -> ArenaError | None:
        """One call alone, answered by nothing and spending nothing: what the arena says of the
        account now (None: it took the call). `v2_token`: a person's pass of the security check.
        """
        tokens = self._tokens()
        action = self._learned.token_actions["create"].order()[0]
        # Paced like any call: a call alone right after another is what keeps a flag on.
        token = await self._gate.call(_PROBE, functools.partial(tokens.mint, action))
        request = payloads.probe(
            mode=self._learned.chat_mode.order()[0], token=token, v2_token=v2_token
        )
        self.calls += 1
        try:
            async with self._page().fetch(request) as fetch:
                head = await fetch.head()
                await self._gate.sent(_PROBE)
                if head.status == 200:
                    return None  # leaving the block aborts whatever it would answer
                return classify(head.status, head.headers, await fetch.text())
        finally:
            self._gate.ended(_PROBE)

    async def call_alone(self, v2_token: str | None = None) -> bool:
        """A flagged account's call alone, with a person's pass of the security check if there
        is one; the flag is settled by what the arena says. True if refused for the flag."""
        try:
            error = await self.probe(v2_token)
        except (FetchFailed, PageError, CDPError) as exc:
            logger.warning("worker %s: its call alone failed: %s", self._id, exc)
            if v2_token is None:  # as if refused: never a call a second after another
                self._machine.still_flagged(f"its call alone failed ({exc})", now=time.time())
            return True
        if isinstance(error, Challenge) or (isinstance(error, AuthRequired) and error.login_gate):
            self._on_blocked(error)  # a person is needed for that first; the flag stays
            return False
        if error is not None and account_verdict(error, fresh_token=True) == "flagged":
            self._machine.last_error = f"{error.kind}: {error.message}"
            if v2_token is None:
                self._machine.still_flagged("its call alone was refused too", now=time.time())
            else:
                logger.warning("worker %s: the arena refused the person's pass", self._id)
            return True
        passed = (
            "a person passed the arena's security check"
            if v2_token is not None
            else "its call alone went through: the flag is gone"
        )
        self._machine.unflag(passed)
        if isinstance(error, RateLimited):
            delay = error.retry_after if error.retry_after is not None else DEFAULT_RATE_LIMIT_S
            self._cool(delay, f"the arena answered its call alone with 429 {error.message}")
        return False

    async def _failed(self, job: CompletionJob, error: ArenaError) -> list[Event] | None:
        logger.info("job %s: the arena refused it: %s %s", job.id, error.kind, error.status)
        self._machine.last_error = f"{error.kind}: {error.message}"
        if isinstance(error, PromptRefused):
            return await self._prompt_refused(job, error)
        if isinstance(error, RateLimited):
            if await self._hand_off(job, error):
                return None
        elif isinstance(error, RecaptchaRejected):
            # Refused before its first token: the client never hears of this account's flag,
            # unless no other account could answer it (it would wait for a person in vain).
            if await self._pass_on(job, reason="the arena refused this account's tokens"):
                return None
            return [
                events.error(
                    "no_worker",
                    f"no account can answer {job.model} now: the arena's security check "
                    f"refused {self._id}, and no other account that has the model is serving",
                )
            ]
        elif isinstance(error, Challenge) or (isinstance(error, AuthRequired) and error.login_gate):
            # Nothing reached the client: the job waits for a worker that can serve it.
            self._on_blocked(error)
            if await self._requeue(job, f"the arena answered {error.kind}"):
                return None
        return [error.to_event()]

    async def _lost(
        self, job: CompletionJob, stream: JobStream, exc: Exception
    ) -> list[Event] | None:
        """The browser went away under the job: start it over unless the client saw part of it."""
        seen = {event["t"] for event in await stream.past()}
        if not seen & events.CONTENT and await self._requeue(job, f"the browser failed: {exc}"):
            return None
        return [events.error("upstream", f"the request to the arena failed: {exc}")]

    async def _requeue(self, job: CompletionJob, reason: str) -> bool:
        """Put the job back on the shared queue as a new attempt; False if it may not move again."""
        if not await job_queue.requeue(
            self._redis, job, timeout_s=self._settings.job_timeout_seconds
        ):
            return False
        logger.info("job %s: back on the queue (%s)", job.id, reason)
        return True

    async def _hand_off(self, job: CompletionJob, error: RateLimited) -> bool:
        """Rest until the limit is over; pass the job on if another worker can serve it now.

        A limit met by an image job holds for images only: the account goes on chatting.
        """
        delay = error.retry_after if error.retry_after is not None else DEFAULT_RATE_LIMIT_S
        until = time.time() + delay
        if (error.modality or job.modality) == "image":
            self._images_limited_until = max(self._images_limited_until, until)
        else:
            self._cool(delay, f"the arena answered 429 (retry after {delay:.0f}s)")
        return await self._pass_on(job)

    def _cool(self, delay: float, reason: str) -> None:
        self._machine.cool(time.time() + delay, reason=reason)
        asyncio.get_running_loop().call_later(
            delay, lambda: self._machine.lift_cooling(time.time())
        )

    async def _prompt_refused(self, job: CompletionJob, error: PromptRefused) -> list[Event] | None:
        """The account refused the prompt: it rests, and the prompt goes to one other account
        (never back here); refused there too, the client gets the 429."""
        rest = self._settings.account_cooling_seconds
        self._cool(rest, f"the arena refused a prompt (429 {error.message}); resting")
        if not job.refused_by:
            moved = job.model_copy(update={"refused_by": [self._id]})
            if await self._pass_on(moved, reason="the arena refused the prompt here"):
                return None
        return [await self._refusal(job, error.message, rest)]

    async def _refusal(self, job: CompletionJob, message: str, rest: float) -> Event:
        """The 429 a client gets when every account that may take its prompt refused it:
        retry after the first one rests no more."""
        refused = ", ".join(sorted({*job.refused_by, self._id}))
        first_free = first_free_in(await read_fleet(self._redis), time.time())
        limited = RateLimited(
            f"the arena refused the prompt on every account that took it ({refused}): {message}",
            retry_after=rest if first_free is None else first_free,
        )
        return limited.to_event()

    async def _pass_on(self, job: CompletionJob, *, reason: str = "rate limited here") -> bool:
        """Put the job on the shared queue for another worker, if one serves; False if none.

        Queued there, any worker with a free slot takes it, and it waits for its job's timeout
        like any other, never to expire unseen on one busy peer.
        """
        excluded = [*job.excluded_workers, self._id]
        peers = [s for s in await read_fleet(self._redis) if await self._has_models(s, job)]
        if pick_peer(peers, excluded=excluded) is None:
            return False
        # Another account cannot continue this account's session: it starts a new one.
        moved = job.as_new_session().model_copy(update={"excluded_workers": excluded})
        return await self._requeue(moved, reason)

    async def _refused_here(self, job: CompletionJob, stream: JobStream) -> bool:
        """True, with the job passed on or failed, if this account refused its prompt before:
        it is never sent here again."""
        if self._id not in job.refused_by:
            return False
        if not await self._pass_on(job, reason="the arena refused the prompt here before"):
            message = "the prompt was refused (429 prompt failed)"
            await stream.close(
                await self._refusal(job, message, self._settings.account_cooling_seconds)
            )
        return True

    async def _has_models(self, peer: WorkerStatus, job: CompletionJob) -> bool:
        """Whether `peer`'s catalog has the job's models (else it would never take it)."""
        if peer.catalog is None:
            return False
        ids = redis_keys.catalog_ids(peer.catalog)
        found = await cast(Awaitable[list[int]], self._redis.smismember(ids, job.arena_models))
        return all(found)

    async def _images_limited(self, job: CompletionJob, stream: JobStream) -> bool:
        """True, with the job passed on or failed, if it asks for an image while images are
        rate limited here."""
        left = self._images_limited_until - time.time()
        if job.modality != "image" or left <= 0:
            return False
        if self._id in job.excluded_workers or not await self._pass_on(job):
            limited = RateLimited("the arena rate limits images", status=429, retry_after=left)
            await stream.close(limited.to_event())
        return True

    async def _stop(self, page: ArenaPage, ids: RequestIds) -> None:
        """Tell the arena to stop generating (each side of a battle), so the account's slots
        free at once."""
        await asyncio.gather(*(self._stop_one(page, request) for request in stop_requests(ids)))

    async def _stop_one(self, page: ArenaPage, request: payloads.ArenaRequest) -> None:
        try:
            status, _ = await asyncio.wait_for(page.call(request), _STOP_WAIT_S)
        except Exception as exc:
            logger.warning("could not stop the answer in the arena: %s", exc)
        else:
            logger.info("stopped the answer in the arena (%s)", status)

    async def _cancelled(self, job: CompletionJob, stream: JobStream) -> None:
        if await self._redis.exists(redis_keys.job_cancel(job.id)):
            await stream.close(events.error("cancelled", "the client went away"))
            return
        # The worker is shutting down. Before any content another worker starts the job over;
        # after some, it cannot be resumed.
        seen = {event["t"] for event in await stream.past()}
        if seen & events.CONTENT or not await self._requeue(job, "this worker is stopping"):
            await stream.close(
                events.error("worker_lost", "the worker serving this request stopped")
            )
