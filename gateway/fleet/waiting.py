"""How long a queued request waits for an account, and what it is told. Pure: no IO here.

A request is served only by an account that has its models. Each such account takes a job when
its pacing record lets it and any cooling is over (`WorkerStatus.free_in`), and after that every `interval_s` (the least time between two calls of one
account): the job with `ahead` jobs before it is taken at the `ahead`-th of those times, in
order. It is an estimate: how long answers run, and the 15-minute and daily budgets beyond an
account's next call, are not known here.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from gateway.http.errors import ApiError
from shared import events
from shared.events import ErrorKind, Event
from shared.fleet.worker_status import WorkerState, WorkerStatus

S = WorkerState
#: How a state that keeps an account from taking jobs is said.
_SAID = {
    S.FLAGGED: "flagged",
    S.CHALLENGE: "waiting for a person",
    S.LOGIN_REQUIRED: "waiting for a person",
    S.STARTING: "starting",
    S.RESTARTING: "restarting",
    S.UNREACHABLE: "not reaching the arena",
    S.UNRECOGNISED: "not recognising the arena",
    S.STOPPED: "stopping",
}


@dataclass(frozen=True, slots=True)
class Account:
    """One account that has a request's models, as its worker's heartbeat shows it."""

    worker: str
    #: Seconds until it may take a job; None: it cannot serve until something changes.
    free_in: float | None
    #: Its worker serves (ready or busy), as opposed to resting (cooling) or stopped.
    serving: bool
    #: Why it does not take a job now, in a few words ("paced", "busy", "cooling until …",
    #: "waiting for a person", …); None: it has room now.
    why: str | None


def account(status: WorkerStatus, now: float, *, paced_s: float = 0.0) -> Account:
    """What `status` says about when its account takes a job, its pacing letting it make a
    call in `paced_s` (read from its record)."""
    free_in = status.free_in(now, paced_s=paced_s)
    if status.serving:
        paced = free_in is not None and free_in > 0
        why = "busy" if status.busy >= status.capacity else "paced" if paced else None
        return Account(status.id, free_in, True, why)
    if status.state is S.COOLING and status.until is not None:
        clock = time.strftime("%H:%M:%S", time.gmtime(status.until))
        return Account(status.id, free_in, False, f"cooling until {clock} UTC")
    return Account(status.id, None, False, _SAID.get(status.state, status.state.value))


def expected_wait(free_in: Sequence[float], interval_s: float, ahead: int) -> float:
    """Seconds until a job with `ahead` jobs before it is taken by accounts that free in
    `free_in` seconds and then every `interval_s`, each job going to the first that frees."""
    if not free_in:
        raise ValueError("no account to wait for")
    frees = sorted(max(0.0, f) for f in free_in)
    for _ in range(ahead):
        heapq.heappush(frees, heapq.heappop(frees) + interval_s)
    return frees[0]


def progress(place: int, waiting: int, wait_s: float) -> str:
    """What a streamed request is told while it waits (an SSE comment's text)."""
    return f"queued {place} of {max(place, waiting)}, about {_duration(wait_s)}"


def describe(accounts: Sequence[Account]) -> str:
    """The accounts' reasons, counted: "2 paced, 1 waiting for a person"."""
    seen = Counter(a.why or "free" for a in accounts)
    return ", ".join(f"{n} {why}" for why, n in sorted(seen.items()))


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why a request is not taken in time, and when to try again."""

    status: int
    message: str
    retry_after_s: float | None = None

    def error(self) -> ApiError:
        """As a status before the first byte (each API renders it in its own shape)."""
        headers = {}
        if self.retry_after_s is not None:
            headers["Retry-After"] = str(_whole_seconds(self.retry_after_s))
        code = "rate_limit_exceeded" if self.status == 429 else "no_worker"
        return ApiError(self.status, self.message, code=code, headers=headers)

    def event(self) -> Event:
        """As the job's `error` event: a status if no byte went out yet, else the stream's end."""
        kind: ErrorKind = "rate_limited" if self.status == 429 else "no_worker"
        return events.error(kind, self.message, retry_after=self.retry_after_s, status=self.status)


def refusal(
    model: str,
    accounts: Sequence[Account],
    *,
    max_wait_s: float,
    expected_s: float | None = None,
) -> Refusal | None:
    """Why a request for `model` is not taken within `max_wait_s`; None if it may wait.

    `expected_s`: the wait expected before it is queued (`expected_wait`); None once it has
    waited that long in vain. Accounts that serve but not in time (paced, a long queue) make it
    a 429 with Retry-After when the first frees; accounts that cannot serve (cooling, waiting for
    a person), or that are all busy with answers, a 503 saying so.
    """
    if expected_s is not None and expected_s <= max_wait_s:
        return None
    ready = [a for a in accounts if a.free_in is not None]
    said = describe(accounts)
    if not ready:
        return Refusal(503, f"No account that has `{model}` can serve it now: {said}.")
    first = min(a.free_in or 0.0 for a in ready)
    if not any(a.serving for a in ready):
        return Refusal(503, f"No account that has `{model}` can serve it in time: {said}.", first)
    if expected_s is None and first <= 0:
        return Refusal(503, f"Every account that has `{model}` is busy: {said}. Try again soon.")
    return Refusal(
        429,
        f"The accounts that have `{model}` cannot take this request within"
        f" {_duration(max_wait_s)} ({said}); the first frees in {_duration(first)}.",
        first,
    )


def _whole_seconds(seconds: float) -> int:
    return max(1, math.ceil(seconds))


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{_whole_seconds(seconds)} s"
    return f"{round(seconds / 60)} min"
