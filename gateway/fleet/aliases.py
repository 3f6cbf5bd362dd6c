"""Model aliases (`LMB_MODEL_ALIASES`): names an agent insists on, answered by arena models.

`claude-*=claude-sonnet-5` lets Claude Code ask for its own model names and reach an arena model.
A name the catalog serves is always that model; otherwise the first alias whose pattern (`*`
and `?` as in shell globs) matches it names the model. Pure: no IO here.
"""

from __future__ import annotations

from collections.abc import Mapping
from fnmatch import fnmatchcase

from gateway.fleet.catalog_view import Catalog
from shared.arena.catalog import Model


def resolve(name: str, catalog: Catalog, aliases: Mapping[str, str]) -> str:
    """The model name to look up for `name`."""
    if catalog.find(name) is not None:
        return name
    return next((target for pattern, target in aliases.items() if fnmatchcase(name, pattern)), name)


def listed(catalog: Catalog, aliases: Mapping[str, str]) -> list[tuple[str, Model]]:
    """The aliases `/v1/models` shows, each with its model: those whose model is served."""
    return [
        (alias, model)
        for alias, target in aliases.items()
        if catalog.find(alias) is None and (model := catalog.find(target)) is not None
    ]
