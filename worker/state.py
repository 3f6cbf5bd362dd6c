"""The worker's state: an explicit table of allowed transitions, every transition logged.

`ready ⇄ busy` follows the job slots in use; the other states say why the browser cannot serve.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator

from shared.diagnosis import Check, Finding
from shared.worker_status import SERVING, WorkerState

logger = logging.getLogger(__name__)

S = WorkerState

#: States in which the worker waits to try the arena again (at `next_try`), backing off.
WAITING_FOR_ARENA = frozenset({S.UNREACHABLE, S.UNRECOGNISED})
#: Where each state may go. A rate limit may be extended while in force, and one not over
#: takes over again once a check, a sign-in or a restart is done. A wait for the arena starts
#: over with its next failed try.
TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    S.STARTING: frozenset(
        {S.READY, S.RATE_LIMITED, S.CHALLENGE, S.LOGIN_REQUIRED, S.RESTARTING, S.STOPPED}
    )
    | WAITING_FOR_ARENA,
    S.READY: frozenset(
        {S.BUSY, S.RATE_LIMITED, S.CHALLENGE, S.LOGIN_REQUIRED, S.RESTARTING, S.STOPPED}
    ),
    S.BUSY: frozenset(
        {S.READY, S.RATE_LIMITED, S.CHALLENGE, S.LOGIN_REQUIRED, S.RESTARTING, S.STOPPED}
    ),
    S.RATE_LIMITED: frozenset(
        {S.READY, S.BUSY, S.RATE_LIMITED, S.CHALLENGE, S.LOGIN_REQUIRED, S.RESTARTING, S.STOPPED}
    ),
    S.CHALLENGE: frozenset(
        {S.READY, S.BUSY, S.RATE_LIMITED, S.LOGIN_REQUIRED, S.RESTARTING, S.STOPPED}
    )
    | WAITING_FOR_ARENA,
    S.LOGIN_REQUIRED: frozenset(
        {S.READY, S.BUSY, S.RATE_LIMITED, S.CHALLENGE, S.RESTARTING, S.STOPPED}
    )
    | WAITING_FOR_ARENA,
    # Waiting for the arena: until it serves, a person steps in, or the next try fails.
    **dict.fromkeys(
        WAITING_FOR_ARENA,
        frozenset({S.READY, S.BUSY, S.RATE_LIMITED, S.CHALLENGE, S.LOGIN_REQUIRED, S.RESTARTING})
        | {S.STOPPED, *WAITING_FOR_ARENA},
    ),
    S.RESTARTING: frozenset({S.STARTING, S.STOPPED}),
    S.STOPPED: frozenset(),
}


#: Pauses between tries of an arena (or of browsers) that keep failing: 2, 4, 8, … s, capped.
FIRST_PAUSE_S = 2.0
MAX_PAUSE_S = 60.0


def retry_pause(failures: int) -> float:
    """The pause after the `failures`-th failure in a row (1, 2, …)."""
    return min(FIRST_PAUSE_S * 2 ** (max(failures, 1) - 1), MAX_PAUSE_S)


class InvalidTransition(RuntimeError):
    pass


class StateMachine:
    def __init__(self, worker_id: str, capacity: int) -> None:
        self.worker_id = worker_id
        self.capacity = capacity
        self.state = S.STARTING
        #: Why it is in its state (one line); for a failed check of the doctor's, that check.
        self.reason = "starting"
        self.check: Check | None = None
        #: Unix time a rate limit ends.
        self.until: float | None = None
        #: Unix time the worker tries the arena again, or starts its next browser.
        self.next_try: float | None = None
        #: Job slots in use.
        self.busy = 0
        self.last_error: str | None = None
        self._listeners: list[Callable[[], None]] = []

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call `listener()` after every transition (not on every slot taken or freed)."""
        self._listeners.append(listener)

    @property
    def serving(self) -> bool:
        """Takes jobs now or as soon as a slot frees."""
        return self.state in SERVING

    def can(self, state: WorkerState) -> bool:
        return state in TRANSITIONS[self.state]

    def to(
        self,
        state: WorkerState,
        *,
        reason: str,
        until: float | None = None,
        check: Check | None = None,
        next_try: float | None = None,
    ) -> None:
        if not self.can(state):
            raise InvalidTransition(f"{self.worker_id}: {self.state} → {state} is not allowed")
        logger.info("worker %s: %s → %s (%s)", self.worker_id, self.state, state, reason)
        self.state = state
        self.reason = reason
        self.check = check
        self.next_try = next_try
        if until is not None:  # a rate limit's end outlasts the states passed through meanwhile
            self.until = until
        self._changed()

    def failed(
        self, state: WorkerState, finding: Finding, *, next_try: float | None = None
    ) -> None:
        """To `state` because of a failed check of the doctor's (the reason says which)."""
        self.to(state, reason=finding.line(), check=finding.check, next_try=next_try)

    def resume(self, reason: str, *, now: float | None = None) -> None:
        """Back to serving: ready, or busy when every slot is taken; rate limited still if the
        account's limit is not over."""
        if self.until is not None and self.until > (time.time() if now is None else now):
            self.to(S.RATE_LIMITED, reason=f"{reason}; the rate limit is not over")
            return
        self.until = None
        self.to(S.BUSY if self.busy >= self.capacity else S.READY, reason=reason)

    def rate_limited(self, until: float, reason: str) -> None:
        """Stop taking jobs until `until`; a shorter limit never shortens one in force."""
        if not self.can(S.RATE_LIMITED):
            return  # stopping or restarting: nothing to take jobs anyway
        self.to(S.RATE_LIMITED, reason=reason, until=max(until, self.until or until))

    def lift_rate_limit(self, now: float) -> None:
        """Serve again if the rate limit has run out (a later one may have extended it)."""
        if self.state is S.RATE_LIMITED and self.until is not None and self.until <= now:
            self.resume("rate limit over", now=now)

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one job slot for the duration of a job."""
        self.busy += 1
        if self.state is S.READY and self.busy >= self.capacity:
            self.to(S.BUSY, reason="all slots in use")
        try:
            yield
        finally:
            self.busy -= 1
            if self.state is S.BUSY and self.busy < self.capacity:
                self.to(S.READY, reason="a slot is free")

    def _changed(self) -> None:
        for listener in self._listeners:
            listener()
