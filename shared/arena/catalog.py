"""The model catalog, as the chat page embeds it in its React Server Components payload."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import orjson

# `self.__next_f.push([1,"<js string>"])`, also in its bootstrap form
# `(self.__next_f=self.__next_f||[]).push(...)`. Next.js writes the string with
# JSON.stringify (plus \u escapes for HTML safety), so it is a JSON string literal.
_PUSH = re.compile(
    r"(?:self\.__next_f|\(\s*self\.__next_f\s*=\s*self\.__next_f\s*\|\|\s*\[\s*\]\s*\))"
    r"\s*\.push\(\s*\[\s*1\s*,\s*(\"[^\"\\]*(?:\\.[^\"\\]*)*\")\s*\]\s*\)",
    re.DOTALL,
)
_INITIAL_MODELS = '"initialModels":'
_DECODER = json.JSONDecoder()
_WHITESPACE = re.compile(r"\s*")
# JavaScript's Number.MAX_SAFE_INTEGER: what the catalog says for "not ranked".
_UNRANKED = 2**53 - 1
#: What a model answers with: the arena's `modality` of a request to it (video is not served).
Modality = Literal["chat", "search", "image", "video"]
_THINKING = re.compile(r"(?<!no-)thinking", re.IGNORECASE)


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
        start = candidate.find(_INITIAL_MODELS)
        while start >= 0:
            spaces = _WHITESPACE.match(candidate, start + len(_INITIAL_MODELS))
            assert spaces is not None  # `\s*` matches anywhere
            value_at = spaces.end()
            try:
                value, _ = _DECODER.raw_decode(candidate, value_at)
            except json.JSONDecodeError:
                value = None
            # RSC may also hold a reference ("$1a") here; only an inline array is the catalog.
            if isinstance(value, list):
                return value
            start = candidate.find(_INITIAL_MODELS, value_at)
    raise ValueError("no initialModels array in the page")


@dataclass(frozen=True, slots=True)
class Model:
    """One catalog entry, reduced to what the bridge needs.

    `reasoning` is read off the name, because the catalog carries no such flag: a model is
    a reasoning one when its public name says "thinking" (but not "no-thinking").
    `rank` is the overall rank, else the rank on its own modality's board, else None.
    """

    id: str
    public_name: str
    organization: str | None
    modality: Modality
    accepts_images: bool
    reasoning: bool
    rank: int | None

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> Model:
        model_id = entry.get("id")
        name = entry.get("publicName")
        if not isinstance(model_id, str) or not model_id or not isinstance(name, str) or not name:
            raise ValueError(f"catalog entry without id or publicName: {entry!r:.200}")
        capabilities = _mapping(entry.get("capabilities"))
        inputs = _mapping(capabilities.get("inputCapabilities"))
        outputs = _mapping(capabilities.get("outputCapabilities"))
        modality = _modality(outputs)
        organization = entry.get("organization")
        image_input = inputs.get("image")
        return cls(
            id=model_id,
            public_name=name,
            organization=organization if isinstance(organization, str) and organization else None,
            modality=modality,
            accepts_images=image_input is True or isinstance(image_input, dict),
            reasoning=_THINKING.search(name) is not None,
            rank=_rank(entry, modality),
        )

    @property
    def anonymous(self) -> bool:
        """An unreleased ("stealth") model: the catalog names no organization."""
        return self.organization is None


def served(entries: Iterable[Mapping[str, Any]]) -> list[Model]:
    """The models a bridge can serve: chat, search and image; video and broken entries dropped."""
    models = []
    for entry in entries:
        try:
            model = Model.from_entry(entry)
        except ValueError:
            continue
        if model.modality != "video":
            models.append(model)
    return models


def _modality(outputs: Mapping[str, Any]) -> Modality:
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
    return value if isinstance(value, Mapping) else {}
