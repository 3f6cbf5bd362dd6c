"""A `<tool_call>` block's text → the calls it makes, checked against the tools offered.

Lenient where a model's slip is unambiguous: code fences around the JSON, stray whitespace,
several calls in one block (one after another, or as a JSON array), raw newlines inside strings,
arguments under `parameters` / `input` or as a JSON string, and argument values of the wrong
JSON type that convert without guessing (`"5"` for an integer, a JSON string for an object,
keys a closed schema does not know). Anything else — not JSON, an unknown tool, arguments that
still fail the tool's schema — is no call: the block stays text. Pure: no IO here.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from jsonschema import exceptions as schema_errors
from jsonschema import validators
from referencing.exceptions import Unresolvable

from gateway.answers.tools.definitions import Tool, ToolCall, ToolUse, new_call_id

_FENCE = re.compile(r"^\s*```[\w+-]*[ \t]*\n?|\n?```\s*$")
#: Where models put the arguments, besides OpenAI's `arguments`.
_ARGUMENT_KEYS = ("arguments", "parameters", "input", "args")
_decoder = json.JSONDecoder(strict=False)  # raw control characters inside strings are allowed


def parse_block(block: str, use: ToolUse) -> list[ToolCall] | None:
    """The calls in one block's inner text, or None if any of it is not a valid call."""
    values = _json_values(_FENCE.sub("", block.strip()))
    if not values:
        return None
    calls = []
    for value in values:
        call = resolve(value, use)
        if call is None:
            return None
        calls.append(call)
    return calls


def resolve(value: Any, use: ToolUse) -> ToolCall | None:
    """One decoded call, checked against its tool; None if it is not one."""
    if not isinstance(value, Mapping):
        return None
    if isinstance(value.get("function"), Mapping):  # OpenAI's shape: {"function": {…}}
        value = value["function"]
    name = value.get("name")
    if not isinstance(name, str):
        return None
    tool = use.find(name.strip())
    if tool is None or (use.named is not None and tool.qualified != use.named):
        return None
    arguments: Any = next((value[k] for k in _ARGUMENT_KEYS if k in value), {})
    if isinstance(arguments, str):
        arguments = _loads(arguments) if arguments.strip() else {}
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, Mapping):
        return None
    checked = checked_arguments(tool, arguments)
    if checked is None:
        return None
    return ToolCall(new_call_id(), tool.name, checked, tool.namespace)


def decode_arguments(text: str) -> dict[str, Any]:
    """A call's arguments as a client sends them back (a JSON string), as an object.

    What is not a JSON object (another model's slip) is kept whole under `input`.
    """
    value = _loads(text) if text.strip() else {}
    return dict(value) if isinstance(value, Mapping) else {"input": text}


def checked_arguments(tool: Tool, arguments: Mapping[str, Any]) -> dict[str, Any] | None:
    """`arguments` coerced to the tool's schema where that is unambiguous; None if invalid."""
    schema = tool.parameters
    coerced = coerce(dict(arguments), schema)
    if not schema:
        return coerced
    try:
        validator = validators.validator_for(schema)(schema)
        valid = validator.is_valid(coerced)
    except (schema_errors.SchemaError, Unresolvable, TypeError, ValueError):
        return coerced  # a schema this library cannot read: the client will check
    return coerced if valid else None


def coerce(value: Any, schema: Any) -> Any:
    """`value` converted to the JSON type `schema` declares, where only one reading exists."""
    if not isinstance(schema, Mapping):
        return value
    kind = schema.get("type")
    if kind == "object" or (kind is None and "properties" in schema):
        if isinstance(value, str):
            parsed = _loads(value)
            value = parsed if isinstance(parsed, Mapping) else value
        if not isinstance(value, Mapping):
            return value
        properties = schema.get("properties") or {}
        closed = schema.get("additionalProperties") is False
        return {
            key: coerce(item, properties.get(key))
            for key, item in value.items()
            if not closed or key in properties
        }
    if kind == "array":
        if isinstance(value, str):
            parsed = _loads(value)
            value = parsed if isinstance(parsed, list) else value
        if isinstance(value, list):
            return [coerce(item, schema.get("items")) for item in value]
        return value
    return _scalar(value, kind)


def _scalar(value: Any, kind: Any) -> Any:
    if kind == "integer":
        if isinstance(value, str) and re.fullmatch(r"\s*-?\d+\s*", value):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
    elif kind == "number":
        if isinstance(value, str):
            try:
                number = float(value)
            except ValueError:
                return value
            return int(number) if number.is_integer() and "." not in value else number
    elif kind == "boolean":
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
    elif kind == "string" and isinstance(value, int | float) and not isinstance(value, bool):
        return json.dumps(value)
    return value


def _json_values(text: str) -> list[Any] | None:
    """Every JSON value in `text`, one after another (commas between them allowed)."""
    values: list[Any] = []
    at = 0
    while True:
        while at < len(text) and (text[at].isspace() or text[at] == ","):
            at += 1
        if at == len(text):
            break
        try:
            value, at = _decoder.raw_decode(text, at)
        except json.JSONDecodeError:
            return None
        values.extend(value if isinstance(value, list) else [value])
    return values


def _loads(text: str) -> Any:
    try:
        return _decoder.decode(text)
    except json.JSONDecodeError:
        return None
