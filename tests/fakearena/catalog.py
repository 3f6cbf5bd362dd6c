"""The model catalog the fake serves, and what kind of answer each model gives."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import orjson

#: The real captures, beside the repository (not the project's own `shared/` package).
CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "arena-protocol" / "captures"
CAPTURED_CATALOG = CAPTURES / "model-catalog-2025-12-01.json"

Kind = Literal["chat", "reasoning", "search", "image", "video"]

# "no-thinking" models exist in the catalog; they answer without reasoning.
_THINKING = re.compile(r"(?<!no-)thinking", re.IGNORECASE)


@cache
def captured_models() -> tuple[Mapping[str, Any], ...]:
    """The `initialModels` list captured on 2025-12-01, read once per process."""
    return tuple(orjson.loads(CAPTURED_CATALOG.read_bytes())["initialModels"])


def kind_of(entry: Mapping[str, Any]) -> Kind:
    outputs = entry.get("capabilities", {}).get("outputCapabilities", {})
    if outputs.get("image"):
        return "image"
    if outputs.get("search"):
        return "search"
    if outputs.get("video"):
        return "video"
    if _THINKING.search(entry.get("publicName", "")):
        return "reasoning"
    return "chat"


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


class Catalog:
    """The served entries (verbatim, for the page) and their lookup by id."""

    def __init__(self, entries: Iterable[Mapping[str, Any]]) -> None:
        self.entries = list(entries)
        self.by_id = {
            entry["id"]: Model(
                id=entry["id"],
                public_name=entry.get("publicName", entry["id"]),
                kind=kind_of(entry),
                accepts_images=bool(
                    entry.get("capabilities", {}).get("inputCapabilities", {}).get("image")
                ),
            )
            for entry in self.entries
        }

    @property
    def initial_model_id(self) -> str | None:
        """The model the page preselects: the first chat model."""
        return next((m.id for m in self.by_id.values() if m.kind == "chat"), None)
