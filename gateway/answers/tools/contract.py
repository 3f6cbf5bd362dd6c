"""The tool contract: what the transcript tells a model about its tools, as briefly as it can.

Each tool is one line of minified JSON (name, description, parameters). The arena takes about
113,567 characters in all, and agents bring tens of kilobytes of tool definitions, so a contract
over its budget has its long descriptions cut to their first sentences, shorter and shorter
until it fits (`fitted`). The call form is the `<tool_call>` block that many open models were
trained on; `call_block` writes it, for the transcript's history of calls too.
Pure: no IO here.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from gateway.answers.tools.definitions import Tool, ToolCall, ToolUse, canonical

OPEN = "<tool_call>"
CLOSE = "</tool_call>"

#: Longest contract kept whole; longer ones have their descriptions cut.
BUDGET = 16_000
#: Description lengths tried, longest first, until the contract fits (0: none at all).
_CUTS: tuple[int | None, ...] = (None, 1000, 400, 200, 100, 50, 0)
#: Schema keys that say nothing the model needs.
_NOISE = frozenset({"$schema", "title", "strict", "$comment", "examples"})
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n\s*\n")

_HOW = (
    "You can call tools: the user's system runs them and sends you the results. To call one, "
    "write this block, with JSON arguments that match the tool's parameters (a JSON Schema):\n"
    f'{OPEN}{{"name": "<tool name>", "arguments": {{...}}}}{CLOSE}\n'
    "Put any words for the user before the block. Several blocks in a row call several tools. "
    "After your calls, stop: the results come in the next message; never write them yourself. "
    "Answer without a block when you need no tool.\n"
    "Tools:\n"
)


def call_block(call: ToolCall) -> str:
    """A call as the model writes it (keys sorted: the history reads the same every turn)."""
    return f'{OPEN}{{"name": {orjson.dumps(call.qualified).decode()}, "arguments": {canonical(call.arguments)}}}{CLOSE}'


def contract(tools: Sequence[Tool], cut: int | None = None) -> str:
    """The contract for `tools`, each description cut to `cut` characters (None: whole)."""
    return _HOW + "\n".join(_line(tool, cut) for tool in tools)


def fitted(tools: Sequence[Tool], room: int) -> str:
    """The fullest contract within `room` characters and the budget; else the shortest."""
    limit = min(room, BUDGET)
    text = ""
    for cut in _CUTS:
        text = contract(tools, cut)
        if len(text) <= limit:
            break
    return text


def reminder(use: ToolUse) -> str | None:
    """What this turn asks of the model beyond the contract, if anything."""
    rules = []
    if use.choice == "none":
        rules.append("Do not call a tool in this answer.")
    elif use.named is not None:
        rules.append(f"Call the tool `{use.named}` in this answer.")
    elif use.choice == "required":
        rules.append("Call at least one tool in this answer.")
    if not use.parallel and use.choice != "none":
        rules.append("Call at most one tool in this answer.")
    return " ".join(rules) or None


def shorten(text: str, cut: int | None) -> str:
    """`text` cut to its first sentences within `cut` characters (the first one at least)."""
    text = text.strip()
    if cut is None or len(text) <= cut:
        return text
    if cut == 0:
        return ""
    kept = ""
    for sentence in _sentences(text):
        if kept and len(kept) + 1 + len(sentence) > cut:
            break
        kept = f"{kept} {sentence}" if kept else sentence
    return kept if len(kept) <= cut else kept[: cut - 1].rstrip() + "…"


def _sentences(text: str) -> Iterator[str]:
    for sentence in _SENTENCE_END.split(text):
        if sentence.strip():
            yield " ".join(sentence.split())


def _line(tool: Tool, cut: int | None) -> str:
    shown: dict[str, Any] = {"name": tool.qualified}
    if description := shorten(tool.description, cut):
        shown["description"] = description
    if tool.parameters.get("properties"):
        shown["parameters"] = _minified(tool.parameters, cut)
    return orjson.dumps(shown).decode()


def _minified(schema: Any, cut: int | None) -> Any:
    """A schema without noise, its descriptions cut like the tool's."""
    if isinstance(schema, Mapping):
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key in _NOISE or (key == "additionalProperties" and value is False):
                continue
            if key == "description" and isinstance(value, str):
                if short := shorten(value, cut):
                    out[key] = short
            elif key in ("properties", "$defs", "definitions") and isinstance(value, Mapping):
                # Keys here are names, never schema keywords.
                out[key] = {name: _minified(sub, cut) for name, sub in value.items()}
            else:
                out[key] = _minified(value, cut)
        return out
    if isinstance(schema, list):
        return [_minified(item, cut) for item in schema]
    return schema
