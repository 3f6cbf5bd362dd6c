"""The model catalog: read off the arena in either of its shapes, and published in one.

The site has served it two ways (`shared.arena.site`):
- **endpoint** (2026): `GET /nextjs-api/model-catalog`, a list of arena groups `{"arena",
  "models"}`; a model may sit in several groups, under one id or under a different id in each,
  and each id is accepted only with its own group's modality;
- **page** (2025): the chat page's RSC payload embeds `{"initialModels": [...]}`.

Both become the same `Model`s: a public name, its kind of answer, and the arena id to send for
each modality it is offered in. Workers publish them in that form (`Model.published`), so the
gateways never need to know which shape the site had.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, cast

import orjson

from shared.arena.site import CATALOG_GROUPS, REASONING_NAME, RSC_CATALOG_KEY, Kind

# `self.__next_f.push([1,"<js string>"])`, also in its bootstrap form
# `(self.__next_f=self.__next_f||[]).push(...)`. Next.js writes the string with
# JSON.stringify (plus \u escapes for HTML safety), so it is a JSON string literal.
_PUSH = re.compile(
    r"(?:self\.__next_f|\(\s*self\.__next_f\s*=\s*self\.__next_f\s*\|\|\s*\[\s*\]\s*\))"
    r"\s*\.push\(\s*\[\s*1\s*,\s*(\"[^\"\\]*(?:\\.[^\"\\]*)*\")\s*\]\s*\)",
    re.DOTALL,
)
_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"\s*")
# JavaScript's Number.MAX_SAFE_INTEGER: what the catalog says for "not ranked".
_UNRANKED = 2**53 - 1
#: What a model answers with: the arena's `modality` of a request to it (video is not served).
Modality = Literal["chat", "search", "image", "video"]
#: Where a worker found the catalog.
Source = Literal["endpoint", "page"]
MODALITY: Mapping[Kind, Modality] = {
    "chat": "chat",
    "reasoning": "chat",
    "code": "chat",
    "search": "search",
    "image": "image",
    "video": "video",
}
#: Groups not named in `CATALOG_GROUPS` come after those that are, in a model's choice of kind.
_LAST = len(CATALOG_GROUPS)


def rsc_text_from_html(html: str) -> str:
    """The RSC payload of a page: every `__next_f.push([1, "…"])` string, decoded, in order."""
    chunks = []
    for match in _PUSH.finditer(html):
        try:
            chunks.append(orjson.loads(match.group(1)))
        except orjson.JSONDecodeError:
            continue
    return "".join(chunks)


def initial_models(text: str) -> list[dict[str, Any]]:
    """The `initialModels` array from a chat page's HTML or from its RSC text."""
    for candidate in (rsc_text_from_html(text), text):
        start = candidate.find(RSC_CATALOG_KEY)
        while start >= 0:
            spaces = _WHITESPACE.match(candidate, start + len(RSC_CATALOG_KEY))
            assert spaces is not None  # `\s*` matches anywhere
            value_at = spaces.end()
            try:
                value, _ = _DECODER.raw_decode(candidate, value_at)
            except json.JSONDecodeError:
                value = None
            # RSC may also hold a reference ("$1a") here; only an inline array is the catalog.
            if isinstance(value, list):
                return value
            start = candidate.find(RSC_CATALOG_KEY, value_at)
    raise ValueError("no initialModels array in the page")


@dataclass(frozen=True, slots=True)
class Model:
    """One model as the bridge serves it.

    `kind` says what it answers with; `ids` holds the arena id to send for each modality the
    model is offered in (one public name may carry a different id per arena group). `reasoning`
    is read off the name, as the catalog carries no such flag. `rank` is the overall rank (2026:
    on its group's board), else the rank on its own modality's board, else None.
    """

    public_name: str
    kind: Kind
    ids: Mapping[Modality, str]
    organization: str | None
    accepts_images: bool
    rank: int | None

    @property
    def modality(self) -> Modality:
        """The `modality` a request to this model carries."""
        return MODALITY[self.kind]

    @property
    def id(self) -> str:
        """The id to send for the model's own modality."""
        return self.ids[self.modality]

    @property
    def reasoning(self) -> bool:
        return self.kind == "reasoning"

    @property
    def anonymous(self) -> bool:
        """An unreleased ("stealth") model: the catalog names no organization."""
        return self.organization is None

    def published(self) -> dict[str, Any]:
        """The model as workers publish it for the gateways."""
        return {
            "name": self.public_name,
            "kind": self.kind,
            "ids": dict(self.ids),
            "organization": self.organization,
            "images": self.accepts_images,
            "rank": self.rank,
        }

    @classmethod
    def from_published(cls, data: Mapping[str, Any]) -> Model:
        return cls(
            public_name=data["name"],
            kind=data["kind"],
            ids=dict(data["ids"]),
            organization=data.get("organization"),
            accepts_images=bool(data.get("images")),
            rank=data.get("rank"),
        )


def from_page(entries: Iterable[Mapping[str, Any]]) -> list[Model]:
    """The models a bridge can serve from the page's `initialModels` (each entry's kind from its
    capabilities); video, broken and unselectable entries are left out."""
    return _merged([(None, entry) for entry in entries])


def from_groups(groups: Iterable[Mapping[str, Any]]) -> list[Model]:
    """The models a bridge can serve from the catalog endpoint's arena groups.

    A model takes its kind from the first of its groups in `CATALOG_GROUPS` order (a text model
    that also searches chats), and the id of each modality from the first group giving one.
    """
    found: list[tuple[str | None, Any]] = []
    for group in groups:
        arena = group.get("arena") if isinstance(group, Mapping) else None
        models = group.get("models") if isinstance(group, Mapping) else None
        if isinstance(arena, str) and isinstance(models, list):
            found += [(arena, entry) for entry in models]
    order = list(CATALOG_GROUPS)
    return _merged(found, precedence=lambda arena: order.index(arena) if arena in order else _LAST)


def _merged(
    entries: list[tuple[str | None, Any]],
    precedence: Callable[[str | None], int] | None = None,
) -> list[Model]:
    """One model per public name, in the order the names first appear in the catalog, its kind
    and details from its entry of highest precedence (else its first); video is not served."""
    parsed = [
        (arena, entry, found)
        for arena, entry in entries
        if (found := _parsed(arena, entry)) is not None
    ]
    appearance: dict[str, int] = {}
    for position, (_, _, (name, _, _)) in enumerate(parsed):
        appearance.setdefault(name, position)
    if precedence is not None:
        parsed.sort(key=lambda item: precedence(item[0]))  # stable: catalog order within
    firsts: dict[str, tuple[Kind, Mapping[str, Any]]] = {}
    ids: dict[str, dict[Modality, str]] = {}
    for _, entry, (name, model_id, kind) in parsed:
        firsts.setdefault(name, (kind, entry))
        ids.setdefault(name, {}).setdefault(MODALITY[kind], model_id)
    models = []
    for name in sorted(firsts, key=appearance.__getitem__):
        kind, entry = firsts[name]
        if kind == "video":
            continue
        capabilities = _mapping(entry.get("capabilities"))
        image_input = _mapping(capabilities.get("inputCapabilities")).get("image")
        organization = entry.get("organization")
        models.append(
            Model(
                public_name=name,
                kind=kind,
                ids={modality: i for modality, i in ids[name].items() if modality != "video"},
                organization=organization
                if isinstance(organization, str) and organization
                else None,
                accepts_images=image_input is True or isinstance(image_input, dict),
                rank=_rank(entry, MODALITY[kind]),
            )
        )
    return models


def _parsed(arena: str | None, entry: Any) -> tuple[str, str, Kind] | None:
    """An entry's public name, id and kind; None for a broken or unselectable one."""
    if not isinstance(entry, Mapping) or entry.get("userSelectable") is False:
        return None
    model_id, name = entry.get("id"), entry.get("publicName")
    if not isinstance(model_id, str) or not model_id or not isinstance(name, str) or not name:
        return None
    kind = CATALOG_GROUPS.get(arena) if arena is not None else None
    if kind is None:
        outputs = _mapping(_mapping(entry.get("capabilities")).get("outputCapabilities"))
        kind = _kind(outputs)
    if kind == "chat" and REASONING_NAME.search(name):
        kind = "reasoning"
    return name, model_id, kind


def _kind(outputs: Mapping[str, Any]) -> Kind:
    if outputs.get("image"):
        return "image"
    if outputs.get("search"):
        return "search"
    if outputs.get("video") and not outputs.get("text"):
        return "video"
    return "chat"


def _rank(entry: Mapping[str, Any], modality: str) -> int | None:
    for rank in (entry.get("rank"), _mapping(entry.get("rankByModality")).get(modality)):
        if isinstance(rank, int) and not isinstance(rank, bool) and 0 < rank < _UNRANKED:
            return rank
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return cast(Mapping[str, Any], value) if isinstance(value, Mapping) else {}
