"""The model catalog the fake serves, and what kind of answer each model gives.

Two shapes, one per site: the captured `initialModels` list (2025-12), where a model's kind comes
from its capabilities; and the reported arena groups of `GET /nextjs-api/model-catalog`
(2026-10), where it comes from the group, so that one id may serve several modalities and one
public name may carry a different id in each group.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import orjson

#: The real captures, beside the repository (not the project's own `shared/` package).
CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "arena-protocol" / "captures"
CAPTURED_CATALOG = CAPTURES / "model-catalog-2025-12-01.json"
REPORTED_CATALOG = CAPTURES / "model-catalog-2026-10-06.json"

Kind = Literal["chat", "reasoning", "search", "image", "video"]
#: The kind of answer the models of an arena group give; the text groups (`text`, `code`,
#: `document`, any other) chat, or reason when their name says so.
GROUP_KINDS: dict[str, Kind] = {
    "search": "search",
    "text-to-image": "image",
    "text-to-video": "video",
}

# "no-thinking" models exist in the catalog; they answer without reasoning.
_THINKING = re.compile(r"(?<!no-)thinking", re.IGNORECASE)


@cache
def captured_models() -> tuple[Mapping[str, Any], ...]:
    """The `initialModels` list captured on 2025-12-01, read once per process."""
    return tuple(orjson.loads(CAPTURED_CATALOG.read_bytes())["initialModels"])


@cache
def reported_groups() -> tuple[Mapping[str, Any], ...]:
    """The arena groups `GET /nextjs-api/model-catalog` answered on 2026-10-06 (as reported)."""
    return tuple(orjson.loads(REPORTED_CATALOG.read_bytes()))


def _text_kind(entry: Mapping[str, Any]) -> Kind:
    return "reasoning" if _THINKING.search(entry.get("publicName", "")) else "chat"


def kind_of(entry: Mapping[str, Any]) -> Kind:
    """The kind of a 2025-12 entry, from its output capabilities."""
    outputs = entry.get("capabilities", {}).get("outputCapabilities", {})
    if outputs.get("image"):
        return "image"
    if outputs.get("search"):
        return "search"
    if outputs.get("video"):
        return "video"
    return _text_kind(entry)


def kind_in_group(arena: str, entry: Mapping[str, Any]) -> Kind:
    """The kind of a 2026-10 entry, from its arena group."""
    return GROUP_KINDS.get(arena) or _text_kind(entry)


def modality_of(kind: Kind) -> str:
    """The `modality` a request for this kind of model must carry."""
    return {"reasoning": "chat"}.get(kind, kind)


@dataclass(frozen=True, slots=True)
class Model:
    id: str
    public_name: str
    kind: Kind
    accepts_images: bool

    @property
    def modality(self) -> str:
        return modality_of(self.kind)


def _model(entry: Mapping[str, Any], kind: Kind) -> Model:
    return Model(
        id=entry["id"],
        public_name=entry.get("publicName", entry["id"]),
        kind=kind,
        accepts_images=bool(
            entry.get("capabilities", {}).get("inputCapabilities", {}).get("image")
        ),
    )


class Catalog:
    """The served catalog (verbatim) and its models by id, then by the modality they serve."""

    def __init__(self, served: list[Any], groups: Mapping[str, Sequence[Model]], grouped: bool):
        self.served = served
        self.groups = groups
        self.grouped = grouped
        self.by_id: dict[str, dict[str, Model]] = {}
        for models in groups.values():
            for model in models:
                self.by_id.setdefault(model.id, {}).setdefault(model.modality, model)

    @classmethod
    def from_entries(cls, entries: Iterable[Mapping[str, Any]]) -> Catalog:
        """A 2025-12 catalog: one list, the page's `initialModels`."""
        served = list(entries)
        return cls(served, {"": [_model(entry, kind_of(entry)) for entry in served]}, False)

    @classmethod
    def from_groups(cls, groups: Iterable[Mapping[str, Any]]) -> Catalog:
        """A 2026-10 catalog: arena groups, each `{"arena", "models"}`."""
        served = list(groups)
        models = {
            group["arena"]: [
                _model(entry, kind_in_group(group["arena"], entry)) for entry in group["models"]
            ]
            for group in served
        }
        return cls(served, models, True)

    def models(self, group: str | None = None) -> list[Model]:
        """One group's models, or every model once per modality, in the served order."""
        if group is not None:
            return list(self.groups.get(group, ()))
        return [model for variants in self.by_id.values() for model in variants.values()]

    def served_for(self, lacking: Collection[str], unselectable: Collection[str]) -> list[Any]:
        """What one account is served: without the public names it lacks; in a grouped catalog,
        `userSelectable` false for the unselectable ones."""

        def entries(models: Iterable[Mapping[str, Any]]) -> list[Any]:
            kept = [entry for entry in models if entry.get("publicName") not in lacking]
            if not self.grouped or not unselectable:
                return kept
            return [
                {**entry, "userSelectable": False}
                if entry.get("publicName") in unselectable
                else entry
                for entry in kept
            ]

        if not self.grouped:
            return entries(self.served)
        return [{**group, "models": entries(group["models"])} for group in self.served]
