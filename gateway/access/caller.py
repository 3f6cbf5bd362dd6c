"""One client request, from its key check to the end of its response.

The completion core asks it to `admit` the model (the key's models and limits) and to `track`
the job, once per job: a request may run several (`n` images); when the response is over (sent,
or the client gone) `end` gives every stream lease back and records the usage of every job.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence

from fastapi import Request
from redis.exceptions import RedisError
from starlette.requests import ClientDisconnect

from gateway.access.key_limits import Lease, Quota, Refusal
from gateway.access.usage import ANONYMOUS, Tally
from gateway.http.disconnect import ClientDisconnected
from gateway.http.errors import ApiError
from gateway.http.services import Services
from shared.credentials.client_keys import ApiKey
from shared.events import Event
from shared.jobs import CompletionJob

log = logging.getLogger(__name__)

#: Error kinds that end an answer without it having failed.
_NOT_FAILURES = frozenset({"cancelled"})


class Caller:
    def __init__(self, key: ApiKey | None, svc: Services) -> None:
        #: None on an open (loopback, keyless) bridge.
        self.key = key
        self.model: str | None = None
        self._svc = svc
        self._started = time.perf_counter()
        self._leases: list[Lease] = []
        self._tallies: list[Tally] = []

    @property
    def key_id(self) -> str:
        return self.key.id if self.key is not None else ANONYMOUS

    async def admit(self, model: str, *, uses: Sequence[str] = ()) -> None:
        """Let this request use `model` under the key's limits, or raise a 403 or 429.

        `model` is the name the request is counted under; `uses`, the catalog models behind it
        (two for a battle). A key limited to some models may use a name it lists, or one whose
        models it all lists. A request admitted under a limit on answers in progress holds a
        lease until it ends.
        """
        self.model = model
        key = self.key
        if key is None:
            return
        allowed = (
            key.models is None or model in key.models or (uses and set(uses) <= set(key.models))
        )
        if not allowed:
            raise ApiError(
                403,
                f"This API key may not use the model `{model}`.",
                param="model",
                code="model_not_allowed",
            )
        quota = Quota(
            key.id,
            requests_per_minute=key.requests_per_minute,
            daily_requests=key.daily_requests,
            concurrent_streams=key.concurrent_streams,
        )
        # Our own id, not the client's X-Request-ID: a repeated id would count once.
        request_id = uuid.uuid4().hex
        refusal = await self._svc.limiter.admit(quota, request_id)
        if refusal is not None:
            self._svc.metrics.refusals.labels(refusal.limit).inc()
            log.info("key %s over its %s limit", key.id, refusal.limit)
            raise _too_many(key, refusal)
        if (lease := self._svc.limiter.hold(quota, request_id)) is not None:
            self._leases.append(lease)
        log.info("key %s admitted for %s", key.id, model)

    def track(self, job: CompletionJob) -> Callable[[list[Event]], None]:
        """What the handle calls with each batch of the job's events it reads."""
        tally = Tally(job.prompt, sides=2 if job.model_b_id is not None else 1)
        self._tallies.append(tally)
        return tally.add

    async def end(self, failure: BaseException | None) -> None:
        """The response is over (`failure`: what interrupted it, if anything)."""
        for lease in self._leases:
            await lease.release()
        if self.model is None:
            return  # refused before any model was asked for: not a key's usage
        tallies: list[Tally | None] = [*self._tallies] or [None]
        prompt_tokens = completion_tokens = 0
        for tally in self._tallies:
            prompt, completion = tally.tokens()
            prompt_tokens += prompt
            completion_tokens += completion
        try:
            await self._svc.usage.record(
                self.key_id,
                self.model,
                requests=len(tallies),
                failed=any(_failed(failure, tally) for tally in tallies),
                prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens,
            )
        except RedisError as exc:
            log.warning("could not record usage of key %s: %s", self.key_id, exc)
        answered = [tally for tally in self._tallies if tally.answered]
        if not answered:
            return
        metrics = self._svc.metrics
        now = time.perf_counter()
        firsts = [t.first_content_at for t in answered if t.first_content_at is not None]
        if firsts:
            metrics.first_token_seconds.observe(min(firsts) - self._started)
        metrics.answer_seconds.observe(now - self._started)
        metrics.tokens.labels("prompt", self.model).inc(prompt_tokens)
        metrics.tokens.labels("completion", self.model).inc(completion_tokens)


def caller(request: Request) -> Caller:
    """The request's caller, set by `gateway.access.client_auth.require_key`."""
    return request.state.caller


def _failed(failure: BaseException | None, tally: Tally | None) -> bool:
    if isinstance(failure, ClientDisconnected | ClientDisconnect):
        return False  # the client left; nothing failed
    if failure is not None:
        return True
    return tally is not None and tally.error is not None and tally.error not in _NOT_FAILURES


def _too_many(key: ApiKey, refusal: Refusal) -> ApiError:
    wait = refusal.retry_after_s
    if refusal.limit == "requests_per_minute":
        message = (
            f"Rate limit reached for this API key: {key.requests_per_minute} requests per minute."
            f" Try again in {wait} s."
        )
        code = "rate_limit_exceeded"
    elif refusal.limit == "daily_requests":
        message = (
            f"Daily quota reached for this API key: {key.daily_requests} requests per UTC day."
            f" Try again in {wait} s."
        )
        code = "daily_quota_exceeded"
    else:
        message = (
            f"Too many answers in progress for this API key: at most {key.concurrent_streams}"
            " at once. Try again when one has ended."
        )
        code = "concurrency_limit_exceeded"
    return ApiError(429, message, code=code, headers={"Retry-After": str(wait)})
