"""What every API's request bodies share: lenient models and their OpenAPI entry.

Routes read and validate bodies by hand (`gateway.http.errors.parse_body`) rather than through
FastAPI's parameters, so that every failure gets the API's own error body and names the
parameter precisely.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict


class Lenient(BaseModel):
    """A request part: clients send many parameters the arena has no use for (temperature,
    tools, metadata, …), which are accepted and ignored."""

    model_config = ConfigDict(extra="ignore")


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """A route's `openapi_extra`: its JSON body's schema, for a body the route reads itself."""
    schema = model.model_json_schema()
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def tag(value: Any, known: Collection[str], *, untyped: str | None = None) -> str:
    """A part's tag for a union of the `known` kinds: its `type`, or `other` for any other kind
    (an `other` model accepts and ignores it). `untyped`: the tag of a part without a type."""
    kind = (
        value.get("type", untyped) if isinstance(value, Mapping) else getattr(value, "type", None)
    )
    return kind if isinstance(kind, str) and kind in known else "other"
