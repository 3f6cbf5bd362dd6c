"""Whether this worker's account can take a job now, and when it may make its next stream call:
the one judge the claim of jobs (`worker.queue_worker`) and every stream call ask.

An account takes jobs while its worker's state machine serves (not cooling, flagged, nor
waiting for a person: `serving`) and its pacing record (`shared.fleet.account_pacing`, held in Redis
for the whole fleet) has room. Every stream call of the account (a job's create, post or retry,
each try again inside one job, a flagged account's call alone) goes through `call`: it waits
until the record has room, takes the call there, and `sent` counts it from when the arena
answered. The claim's script reads the same record and claims nothing while the account is
paced, nor while a job it claimed has yet to make its call: a worker never claims a job it
cannot send at once. Gateways read the record too, to tell a waiting request when the account
frees. A guest is paced under its worker's id (`paced_as`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from redis.exceptions import RedisError

from shared.fleet.account_pacing import AccountPacer, Standing
from shared.storage import redis_keys

logger = logging.getLogger(__name__)


class AccountGate:
    def __init__(
        self,
        pacer: AccountPacer | None,
        account: Callable[[], str],
        *,
        serving: Callable[[], bool] = lambda: True,
    ) -> None:
        #: None: the pace bounds nothing (`Pace.bounded`), and calls go at once.
        self._pacer = pacer
        self._account = account
        #: Whether the account's standing lets it take jobs (its worker's state machine).
        self.serving = serving
        #: Unix time the account may make its next call, as last read (0: nothing read yet).
        self.free_at = 0.0
        #: Jobs (ids) claimed, or trying again, that have yet to make their call.
        self._wanting: set[str] = set()
        #: The call each job took last, until the arena answers it.
        self._calls: dict[str, str] = {}

    @property
    def paced(self) -> bool:
        return self._pacer is not None

    @property
    def account(self) -> str:
        """The account's name in its pacing record."""
        return self._account()

    def calls_key(self) -> str:
        return redis_keys.account_calls(self.account)

    def pace_args(self) -> list[int]:
        """The pace's bounds, as the claim's script takes them."""
        return self._pacer.pace.args() if self._pacer is not None else [0, 0, 0]

    def left(self) -> float:
        """Seconds until the account may call, as last read."""
        return max(0.0, self.free_at - time.time())

    def open(self) -> bool:
        """Whether a job claimed now could make its call at once."""
        return self._pacer is None or (not self._wanting and self.left() <= 0)

    def slots(self, free: int) -> int:
        """How many of `free` slots may claim a job now: none while the account does not serve
        or its pacing has no room; paced, one at a time."""
        if not self.serving():
            return 0
        if self._pacer is None:
            return free
        return min(free, 1) if self.open() else 0

    def learned(self, wait_s: float) -> None:
        """The claim's script read the account's record: it may call in `wait_s`."""
        self._note(wait_s)

    def claimed(self, job_id: str) -> None:
        if self._pacer is not None:
            self._wanting.add(job_id)

    def ended(self, job_id: str) -> None:
        """The job ended, whether or not it made a call."""
        self._wanting.discard(job_id)
        self._calls.pop(job_id, None)

    async def call(self, job_id: str, token: Callable[[], Awaitable[str]]) -> str:
        """The token for the job's next stream call, got once the account may make it: the call
        is then taken (recorded) for the account, and goes out next.

        The token is got before the call is taken, so that nothing slow lies between the take
        and the send; it is got after any wait, so that it is fresh.
        """
        if self._pacer is None:
            return await token()
        self._wanting.add(job_id)
        try:
            while True:
                await asyncio.sleep(self.left())
                got = await token()
                standing = await self._pacer.take(self.account)
                if standing.free:
                    self._took(job_id, standing)
                    return got
                # Another process of this account called first: wait for it (a new token then).
                logger.info("account %s is paced for %.1f s more", self.account, standing.wait_s)
                self._note(standing.wait_s)
        finally:
            self._wanting.discard(job_id)

    async def sent(self, job_id: str) -> None:
        """The arena answered the job's call: the account's next call counts from now."""
        call = self._calls.pop(job_id, None)
        if call is None or self._pacer is None:
            return
        try:
            self._note((await self._pacer.sent(self.account, call)).wait_s)
        except (RedisError, OSError) as exc:  # the answer matters more; counted from its take
            logger.warning("could not count the call of %s from its answer: %s", self.account, exc)

    def _took(self, job_id: str, standing: Standing) -> None:
        if standing.call is not None:
            self._calls[job_id] = standing.call
        self._note(standing.next_wait_s)

    def _note(self, wait_s: float) -> None:
        self.free_at = time.time() + wait_s
