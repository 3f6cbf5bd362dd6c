"""Each account's standing with the site's security check: its flag, and the calls that trip one.

Reported in 2026: a few calls close together get an account flagged; every stream call then
answers 403 and extends the flag, until a person passes a reCAPTCHA v2 checkbox in the page.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

from tests.fakearena.scenario import FlagRule


@dataclass
class Flag:
    since: float  # Unix time it was raised
    until: float | None  # when it lapses by itself; None: only a passed check clears it
    refused: int = 0  # stream calls refused since

    def to_json(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "refused": self.refused}


@dataclass
class Standing:
    flags: dict[str, Flag] = field(default_factory=dict)
    #: Per account, the times of the calls counted in its current window.
    calls: dict[str, deque[float]] = field(default_factory=dict)

    def flag_of(self, account: str, now: float) -> Flag | None:
        """The account's flag, if it has one that has not lapsed."""
        flag = self.flags.get(account)
        if flag is not None and flag.until is not None and now >= flag.until:
            del self.flags[account]
            return None
        return flag

    def raise_flag(self, account: str, now: float, lasts: float | None) -> Flag:
        self.calls.pop(account, None)
        self.flags[account] = Flag(since=now, until=None if lasts is None else now + lasts)
        return self.flags[account]

    def refuse(self, flag: Flag, now: float, lasts: float | None) -> None:
        """A call refused for the flag: counted, and the flag lasts `lasts` longer from now."""
        flag.refused += 1
        if flag.until is not None and lasts is not None:
            flag.until = now + lasts

    def clear(self, account: str) -> None:
        """The account passed the check: no flag, and its counting starts afresh."""
        self.flags.pop(account, None)
        self.calls.pop(account, None)

    def trips(self, account: str, now: float, rule: FlagRule) -> bool:
        """Count a call; True if it is the rule's `requests`-th within `within_seconds` of the
        first call still counted (calls older than that drop out of the window)."""
        window = self.calls.setdefault(account, deque())
        while window and now - window[0] > rule.within_seconds:
            window.popleft()
        window.append(now)
        return len(window) >= rule.requests

    def live(self, now: float) -> dict[str, Flag]:
        """Every flag that has not lapsed, by account."""
        return {
            account: flag for account in list(self.flags) if (flag := self.flag_of(account, now))
        }
