"""The worker's state: an explicit table of allowed transitions, every transition logged.

`ready ⇄ busy` follows the job slots in use; the other states say why the browser cannot serve.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Sequence

from shared.fleet.diagnosis import Check, Finding
from shared.fleet.worker_status import SERVING, WorkerState

logger = logging.getLogger(__name__)

S = WorkerState

#: States in which the worker waits to try the arena again (at `next_try`), backing off.
WAITING_FOR_ARENA = frozenset({S.UNREACHABLE, S.UNRECOGNISED})
#: What may stop a serving worker: its account rests (cooling) or is flagged, a person is
#: needed, the browser is replaced, or the worker stops.
_PAUSES = frozenset({S.COOLING, S.FLAGGED, S.CHALLENGE, S.LOGIN_REQUIRED, S.RESTARTING, S.STOPPED})
#: Where each state may go. Cooling may be extended while in force, and a flagged account is
#: flagged anew when its call alone is refused; either takes over again once a check, a sign-in
#: or a restart is done. A wait for the arena starts over with its next failed try. The page
#: is opened anew (starting) when another account's cookies are brought in.
TRANSITIONS: dict[WorkerState, frozenset[WorkerState]] = {
    S.STARTING: frozenset({S.READY}) | _PAUSES | WAITING_FOR_ARENA,
    S.READY: frozenset({S.BUSY, S.STARTING}) | _PAUSES,
    S.BUSY: frozenset({S.READY, S.STARTING}) | _PAUSES,
    S.COOLING: frozenset({S.READY, S.BUSY, S.STARTING}) | _PAUSES,
    S.FLAGGED: frozenset({S.READY, S.BUSY, S.STARTING}) | _PAUSES | WAITING_FOR_ARENA,
    S.CHALLENGE: frozenset({S.READY, S.BUSY}) | (_PAUSES - {S.CHALLENGE}) | WAITING_FOR_ARENA,
    S.LOGIN_REQUIRED: frozenset({S.READY, S.BUSY})
    | (_PAUSES - {S.LOGIN_REQUIRED})
    | WAITING_FOR_ARENA,
    # Waiting for the arena: until it serves, a person steps in, or the next try fails.
    **dict.fromkeys(WAITING_FOR_ARENA, frozenset({S.READY, S.BUSY}) | _PAUSES | WAITING_FOR_ARENA),
    S.RESTARTING: frozenset({S.STARTING, S.STOPPED}),
    S.STOPPED: frozenset(),
}

#: A flagged account's pauses before it tries alone, as multiples of the first: 20 → 40 → 80 →
#: 120 minutes with the default first pause, then 120 again (what kept accounts alive).
FLAG_PAUSE_FACTORS = (1, 2, 4, 6)


def flag_pauses(first_s: float) -> tuple[float, ...]:
    return tuple(first_s * factor for factor in FLAG_PAUSE_FACTORS)


#: Pauses between tries of an arena (or of browsers) that keep failing: 2, 4, 8, … s, capped.
FIRST_PAUSE_S = 2.0
MAX_PAUSE_S = 60.0


def retry_pause(failures: int) -> float:
    """The pause after the `failures`-th failure in a row (1, 2, …)."""
    return min(FIRST_PAUSE_S * 2 ** (max(failures, 1) - 1), MAX_PAUSE_S)


class InvalidTransition(RuntimeError):
    pass


class StateMachine:
    def __init__(
        self,
        worker_id: str,
        capacity: int,
        *,
        flag_pauses: Sequence[float] = flag_pauses(1200.0),
    ) -> None:
        self.worker_id = worker_id
        self.capacity = capacity
        self.state = S.STARTING
        #: Why it is in its state (one line); for a failed check of the doctor's, that check.
        self.reason = "starting"
        self.check: Check | None = None
        #: Unix time the account's cooling ends.
        self.until: float | None = None
        #: The account is flagged: pauses waited out so far, plus one (0: not flagged); and
        #: the Unix time it tries alone. Both outlast the states passed through meanwhile.
        self.flag_level = 0
        self.probe_at: float | None = None
        self._flag_pauses = tuple(flag_pauses)
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
        self._changed()

    def failed(
        self, state: WorkerState, finding: Finding, *, next_try: float | None = None
    ) -> None:
        """To `state` because of a failed check of the doctor's (the reason says which)."""
        self.to(state, reason=finding.line(), check=finding.check, next_try=next_try)

    def resume(self, reason: str, *, now: float | None = None) -> None:
        """Back to serving: ready, or busy when every slot is taken; flagged or cooling still
        if the account is."""
        if self.flag_level:
            self.to(
                S.FLAGGED, reason=f"{reason}; the account is still flagged", next_try=self.probe_at
            )
            return
        if self.until is not None and self.until > (time.time() if now is None else now):
            self.to(S.COOLING, reason=f"{reason}; the account is still cooling")
            return
        self.until = None
        self.to(S.BUSY if self.busy >= self.capacity else S.READY, reason=reason)

    def cool(self, until: float, reason: str) -> None:
        """Rest the account until `until`; a shorter rest never shortens one in force, and a
        flag outlasts it."""
        self.until = max(until, self.until or until)
        if self.flag_level or not self.can(S.COOLING):
            return  # flagged, stopping or restarting: nothing to take jobs anyway
        self.to(S.COOLING, reason=reason)

    def lift_cooling(self, now: float) -> None:
        """Serve again if the account's rest is over (a later 429 may have extended it)."""
        if self.state is S.COOLING and self.until is not None and self.until <= now:
            self.resume("cooling over", now=now)

    def flag(self, reason: str, *, now: float) -> None:
        """The site flagged the account: nothing more is sent until a person passes its check
        or, after the first pause, a call alone finds the flag gone. Once per flag."""
        if self.flag_level:
            return
        self._flagged(1, reason, now)

    def still_flagged(self, reason: str, *, now: float) -> None:
        """Its call alone was refused: wait the next, longer pause."""
        self._flagged(self.flag_level + 1, reason, now)

    def unflag(self, reason: str, *, now: float | None = None) -> None:
        """The flag is gone (a person passed the check, or the call alone went through)."""
        self.flag_level, self.probe_at = 0, None
        if self.state is S.FLAGGED:
            self.resume(reason, now=now)

    def new_account(self) -> None:
        """Another account signed in: the last one's rest or flag is not its own."""
        self.flag_level, self.probe_at, self.until = 0, None, None

    def _flagged(self, level: int, reason: str, now: float) -> None:
        self.flag_level = level
        pause = self._flag_pauses[min(level, len(self._flag_pauses)) - 1]
        self.probe_at = now + pause
        if self.can(S.FLAGGED):
            self.to(
                S.FLAGGED,
                reason=f"{reason}; it tries alone in {pause / 60:.0f} min",
                next_try=self.probe_at,
            )

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
