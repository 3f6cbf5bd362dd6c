"""JSON mode by instruction: the arena's models have no structured output, so the model is told
to answer in JSON (matching a schema, if the client gave one) and its answer is checked.
Pure: no IO here.

An answer wrapped in a code fence is unwrapped; one that still is not a JSON object (or does not
match the schema) is refused with the reason, which the model is told in a retry.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from jsonschema import exceptions as schema_errors
from jsonschema import validators
from referencing.exceptions import Unresolvable

_FENCED = re.compile(r"\A\s*```[\w-]*[ \t]*\n(?P<inner>.*?)\n?[ \t]*```\s*\Z", re.DOTALL)


@dataclass(frozen=True, slots=True)
class JsonFormat:
    """An answer in JSON: an object, matching `schema` when one is given."""

    schema: Mapping[str, Any] | None = field(default=None)


def instruction(fmt: JsonFormat) -> str:
    """What the model is asked, after the conversation."""
    text = "Answer with one JSON object and nothing else: no code fence, no words around it."
    if fmt.schema:
        text += f" It must match this JSON Schema: {orjson.dumps(fmt.schema).decode()}"
    return text


def check(answer: str, fmt: JsonFormat) -> tuple[str | None, str]:
    """The answer as clean JSON text, or None with the reason it is not what was asked."""
    fenced = _FENCED.match(answer)
    text = (fenced.group("inner") if fenced else answer).strip()
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        return None, f"it is not valid JSON ({exc})"
    if not isinstance(value, dict):
        return None, "it is JSON, but not an object"
    if fmt.schema:
        try:
            error = next(validators.validator_for(fmt.schema)(fmt.schema).iter_errors(value), None)
        except (schema_errors.SchemaError, Unresolvable, TypeError, ValueError):
            error = None  # a schema this library cannot read: the client will check
        if error is not None:
            where = "/".join(map(str, error.absolute_path)) or "the top level"
            return None, f"it does not match the schema at {where}: {error.message}"
    return text, ""


def retry_message(reason: str) -> str:
    """What the model is told when its answer was refused."""
    return (
        f"Your answer cannot be used: {reason}. Answer again with only the JSON object, "
        "nothing before or after it."
    )
