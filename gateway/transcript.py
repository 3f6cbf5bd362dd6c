"""Conversation turns → the one prompt the arena takes.

The arena answers a single user message, so a conversation is sent as a transcript: each turn
between tags named after its role, in order. A lone user message is sent as it is.
Every API (OpenAI chat, Anthropic Messages, Responses) hands its messages over as `Turn`s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway import errors
from shared.jobs import ImageInput

#: The longest prompt the arena accepts, as measured by other bridges.
MAX_PROMPT_CHARS = 113_567

#: `tool` carries what a client's own tools returned; the arena sees it as a tagged turn.
Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation, whichever API it came through."""

    role: Role
    text: str
    images: tuple[ImageInput, ...] = ()


def prompt_from_turns(turns: Sequence[Turn], *, param: str = "messages") -> str:
    """The prompt for `turns`; 400 when too long, 422 without a user turn.

    `param` names where the turns were in the client's request, for the error.
    """
    if not any(t.role == "user" for t in turns):
        raise errors.unprocessable(
            f"The {param} must include at least one user message.", param=param
        )
    if len(turns) == 1:
        prompt = turns[0].text
    else:
        prompt = "\n\n".join(f"<{t.role}>\n{t.text}\n</{t.role}>" for t in turns if t.text)
    if len(prompt) > MAX_PROMPT_CHARS:
        raise errors.invalid(
            f"The prompt is {len(prompt):,} characters long; the arena accepts at most "
            f"{MAX_PROMPT_CHARS:,}.",
            param=param,
            code="context_length_exceeded",
        )
    return prompt
