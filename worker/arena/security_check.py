"""A flagged account waits out its flag: the site's security check is kept in sight in the
worker's page for a person to pass (through the admin page's screen), their pass goes to the
arena with the next call, and while nobody passes it the account tries one call alone after
each pause (20 → 40 → 80 → 120 minutes by default).

Nothing else is sent while flagged: every call of a flagged account extends its flag.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from shared.fleet.worker_status import WorkerState
from worker.browser.cdp import CDPError
from worker.browser.page import ArenaPage, PageError
from worker.state import StateMachine

logger = logging.getLogger(__name__)

#: How often the page is looked at (a person expects their pass noticed within seconds).
LOOK_EVERY_S = 1.0

#: One call alone, with a person's pass of the check if there is one; True if it was refused
#: for the flag.
CallAlone = Callable[[str | None], Awaitable[bool]]


async def wait_out_flag(
    machine: StateMachine,
    page: Callable[[], ArenaPage],
    call_alone: CallAlone,
    reopen: Callable[[], Awaitable[None]],
) -> None:
    """Watch the page and call alone until the worker is flagged no more."""
    passes_sent: set[str] = set()
    in_sight = False
    while machine.state is WorkerState.FLAGGED:
        try:
            check = await page().security_check()
        except (CDPError, PageError) as exc:  # the page is being replaced
            logger.debug("could not look for the security check: %s", exc)
        else:
            if not check.shown and not in_sight and machine.busy == 0:
                # The site shows its check on a page loaded once the account is flagged: load
                # it again (when no answer streams in it) so that a person has it in sight.
                in_sight = True
                await reopen()
                continue
            if check.token is not None and check.token not in passes_sent:
                passes_sent.add(check.token)
                logger.info("worker %s: a person passed the security check", machine.worker_id)
                if await call_alone(check.token):
                    in_sight = False  # refused all the same: the check again, for another try
            elif machine.probe_at is not None and time.time() >= machine.probe_at:
                await call_alone(None)
        await asyncio.sleep(LOOK_EVERY_S)
