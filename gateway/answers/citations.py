"""A search answer's sources, gathered from the arena's citation events. Pure: no IO here.

The arena sends a source several times while the answer streams: first short (`url`, `id`,
`charLocation`: where in the answer it is cited), later in full (with `title`, `favicon`, …),
and at the end the list of them all. `Sources` merges them by URL and says which stretch of
the answer each citation covers: from the previous citation's place up to its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Citation:
    url: str
    title: str | None
    #: The arena's id for the source (a small number, as text).
    source_id: str
    #: The answer's characters `[start, end)` that the source supports.
    start: int
    end: int


@dataclass(slots=True)
class _Source:
    id: str
    title: str | None = None
    places: set[int] = field(default_factory=set)


class Sources:
    def __init__(self) -> None:
        self._by_url: dict[str, _Source] = {}

    def __bool__(self) -> bool:
        return bool(self._by_url)

    def add(self, source: Mapping[str, Any], *, at: int) -> None:
        """Fold in one citation event's source; `at` is how much answer text came before it,
        the place for a source that does not say where it is cited."""
        url = source.get("url")
        if not isinstance(url, str) or not url:
            return
        known = self._by_url.setdefault(url, _Source(str(source.get("id") or "")))
        title = source.get("title")
        if isinstance(title, str) and title:
            known.title = title
        places = source.get("charLocation")
        if isinstance(places, list):
            known.places.update(n for n in places if isinstance(n, int) and n >= 0)
        if not known.places:
            known.places.add(at)

    def citations(self) -> list[Citation]:
        """One citation per place a source is cited, in the answer's order."""
        placed = sorted((place, url) for url, s in self._by_url.items() for place in s.places)
        citations = []
        start = 0
        for end, url in placed:
            source = self._by_url[url]
            citations.append(Citation(url, source.title, source.id, start, end))
            start = end
        return citations
