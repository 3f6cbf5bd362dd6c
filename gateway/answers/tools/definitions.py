"""A request's tools, the choice it leaves the model, and the calls a model makes: API-neutral.

OpenAI chat, Responses and Anthropic Messages each translate their own tool shapes into these.
Pure: no IO here.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

#: `auto`: the model decides; `none`: no calls; `required`: at least one (Anthropic's `any`).
Choice = Literal["auto", "none", "required"]


@dataclass(frozen=True, slots=True)
class Tool:
    """A function the client runs for the model."""

    name: str
    description: str = ""
    #: The arguments' JSON Schema (an object schema).
    parameters: Mapping[str, Any] = field(default_factory=dict)
    #: The group a Responses `namespace` tool puts it in.
    namespace: str | None = None

    @property
    def qualified(self) -> str:
        """The name the model calls it by: `namespace.name` inside a namespace."""
        return f"{self.namespace}.{self.name}" if self.namespace else self.name


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One call of a tool, as a model made it (or as a client sends it back in the history)."""

    id: str
    name: str
    arguments: Mapping[str, Any]
    namespace: str | None = None

    @property
    def qualified(self) -> str:
        return f"{self.namespace}.{self.name}" if self.namespace else self.name

    @property
    def arguments_json(self) -> str:
        return orjson.dumps(self.arguments).decode()

    def same_as(self, other: ToolCall) -> bool:
        """The same tool with the same arguments (ids aside)."""
        return self.qualified == other.qualified and canonical(self.arguments) == canonical(
            other.arguments
        )


@dataclass(frozen=True, slots=True)
class ToolUse:
    """What a request offers the model: its tools and how it may call them."""

    tools: Sequence[Tool]
    choice: Choice = "auto"
    #: One tool the model must call (OpenAI's named `tool_choice`, Anthropic's `tool`).
    named: str | None = None
    #: Several calls in one answer.
    parallel: bool = True

    @property
    def detects(self) -> bool:
        """Whether the answer is read for calls (`none` leaves it all text)."""
        return bool(self.tools) and self.choice != "none"

    def digest(self) -> str:
        """Names the tool set: a conversation goes on in its arena thread while this stays."""
        described = [[t.qualified, t.description, t.parameters] for t in self.tools]
        return hashlib.sha256(orjson.dumps(described, option=orjson.OPT_SORT_KEYS)).hexdigest()

    def find(self, name: str) -> Tool | None:
        """The tool a model means by `name`: exact, else the only one it can mean.

        A bare name finds a namespaced tool, and case is forgiven, when exactly one tool fits.
        """
        for tool in self.tools:
            if name == tool.qualified:
                return tool
        folded = name.casefold()
        fits = [t for t in self.tools if folded in (t.qualified.casefold(), t.name.casefold())]
        return fits[0] if len(fits) == 1 else None


def canonical(value: Any) -> str:
    """`value` as compact JSON with sorted keys: the same arguments always read the same."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()


def new_call_id() -> str:
    """A call's id; each API puts its own prefix in front (`call_`, `toolu_`)."""
    return secrets.token_hex(12)
