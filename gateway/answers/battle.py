"""Two models answering one prompt: the arena's battle and side-by-side modes, by model name.

- `battle`: two different chat models the bridge draws at random; their names stay hidden,
  as in the arena, which reveals a battle's models only after a vote (the bridge casts none).
- `side-by-side:<a>,<b>`: the two models named, which are shown with their answers.

Either way both answers come back together, side a first (OpenAI: choices 0 and 1).
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from gateway.fleet.catalog_view import Catalog, find_model
from gateway.http import errors
from shared.arena.catalog import Model
from shared.jobs import Mode

BATTLE = "battle"
SIDE_BY_SIDE = "side-by-side:"

_draw = random.SystemRandom()


@dataclass(frozen=True, slots=True)
class Lineup:
    """The model(s) a request asked for: one (`direct`) or two."""

    mode: Mode
    a: Model
    b: Model | None = None

    @property
    def models(self) -> list[Model]:
        return [self.a] if self.b is None else [self.a, self.b]


def is_pair(name: str) -> bool:
    return name == BATTLE or name.startswith(SIDE_BY_SIDE)


def lineup(catalog: Catalog, name: str) -> Lineup:
    """The models `name` stands for; 404 for an unknown one, 400 for a malformed pair."""
    if name == BATTLE:
        candidates = [m for m in catalog.listed() if m.modality == "chat"]
        if len(candidates) < 2:
            raise errors.unavailable(
                "The catalog has fewer than two chat models to battle.", code="no_battle"
            )
        a, b = _draw.sample(candidates, 2)
        return Lineup("battle", a, b)
    if name.startswith(SIDE_BY_SIDE):
        names = [n.strip() for n in name[len(SIDE_BY_SIDE) :].split(",")]
        if len(names) != 2 or not all(names):
            raise errors.invalid(
                "Ask for two models side by side as `side-by-side:<model a>,<model b>`.",
                param="model",
            )
        a, b = (find_model(catalog, n) for n in names)
        if a.modality != b.modality:
            raise errors.invalid(
                f"`{a.public_name}` ({a.modality}) and `{b.public_name}` ({b.modality}) cannot "
                "answer side by side: they make different kinds of answer.",
                param="model",
            )
        return Lineup("side-by-side", a, b)
    return Lineup("direct", find_model(catalog, name))


def require_one(name: str, *, holder: str) -> None:
    """400 when `name` asks for two models where the API's answer holds one (`holder`)."""
    if is_pair(name):
        raise errors.invalid(
            f"{holder} holds one answer: ask /v1/chat/completions for two models at once.",
            param="model",
        )


def shown_names(name: str) -> list[str | None]:
    """The model name to show with each answer of a request for `name` (None: not revealed)."""
    if name == BATTLE:
        return [None, None]
    if name.startswith(SIDE_BY_SIDE):
        return [n.strip() for n in name[len(SIDE_BY_SIDE) :].split(",")]
    return [name]
