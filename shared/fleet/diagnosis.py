"""What is wrong between the bridge and the arena, said the same way wherever an operator looks.

`lmarena-bridge doctor` runs one check per assumption the bridge makes about the site; a worker
that cannot serve says which of those checks it failed, in one line that points to the doctor
(its heartbeat carries it to `up`'s console, the admin page and `GET /admin/api/workers`).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

DOCTOR = "lmarena-bridge doctor"


class Check(StrEnum):
    """The doctor's checks, in the order it runs them."""

    PAGE = "page"
    SIGNED_IN = "signed_in"
    SITE_KEY = "site_key"
    TOKEN = "token"
    CATALOG = "catalog"
    UPLOAD_ACTIONS = "upload_actions"
    MODE = "mode"
    CHAT = "chat"


@dataclass(frozen=True, slots=True)
class Finding:
    """One check's outcome: what was seen, and when it failed, what to do."""

    check: Check
    ok: bool
    seen: str
    todo: str = ""

    @property
    def detail(self) -> str:
        return f"{self.seen}; {self.todo}" if self.todo and not self.ok else self.seen

    def line(self) -> str:
        """The one line a worker shows for a failed check, pointing to the doctor."""
        return f"{self.detail}. Run `{DOCTOR}` (its check `{self.check}` fails)"


def problem(check: Check, seen: str, todo: str) -> Finding:
    return Finding(check, False, seen, todo)
