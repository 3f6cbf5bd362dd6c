"""What a worker has learnt about the site by trying: which of the known variants it takes.

The site has changed the mode a new chat goes out in and the token action a regenerate takes
(`shared.arena.site`); rather than guess which site it faces, a worker tries the variants in
order, remembers the one that worked and tries it first from then on.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shared.arena.site import CHAT_MODES, TOKEN_ACTIONS


class Preference:
    """A few variants, most likely first; the one that last worked goes first."""

    def __init__(self, variants: Iterable[str]) -> None:
        self._variants = tuple(variants)
        #: The variant the site took last; None until one worked.
        self.worked: str | None = None

    def order(self) -> list[str]:
        first = self.worked or self._variants[0]
        return [first, *(variant for variant in self._variants if variant != first)]

    def confirm(self, variant: str) -> None:
        self.worked = variant


def token_tries(actions: list[str]) -> list[tuple[str, bool]]:
    """The tokens to try a request with after refusals: `(action, minted now)`.

    A pooled token of the likeliest action first; on a refusal, a new token of each other action
    (the site may want another one), then a new one of the likeliest (the refused one may have
    been stale or scored low).
    """
    first, *others = actions
    return [(first, False), *((action, True) for action in others), (first, True)]


@dataclass
class Learned:
    chat_mode: Preference = field(default_factory=lambda: Preference(CHAT_MODES))
    token_actions: Mapping[str, Preference] = field(
        default_factory=lambda: {
            endpoint: Preference(actions) for endpoint, actions in TOKEN_ACTIONS.items()
        }
    )
