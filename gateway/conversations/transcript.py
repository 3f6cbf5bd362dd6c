"""Conversation turns → the one prompt the arena takes.

The arena answers a single user message, so a conversation is sent as a transcript: each turn
between tags named after its role, in order. A lone user message is sent as it is.
Every API (OpenAI chat, Anthropic Messages, Responses) hands its messages over as `Turn`s.
An assistant turn's tool calls are written after its text in the contract's call form, and a
tool's result is a `tool` turn that names the tool (see `gateway.answers.tools`).

System messages stay where the client put them, each a `<system>` block of its own; with
`merge_system` (LMB_MERGE_SYSTEM_MESSAGES) they are merged into one block at the top, as
SillyTavern users expect when a preset scatters them through the chat.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from gateway.answers.tools.contract import call_block
from gateway.answers.tools.definitions import ToolCall
from gateway.conversations.image_inputs import ImageSource
from gateway.http import errors

#: The longest prompt the arena accepts, as measured by other bridges.
MAX_PROMPT_CHARS = 113_567

#: `tool` carries what a client's own tools returned; the arena sees it as a tagged turn.
Role = Literal["system", "user", "assistant", "tool"]


@dataclass(frozen=True, slots=True)
class Turn:
    """One message of a conversation, whichever API it came through."""

    role: Role
    text: str
    images: tuple[ImageSource, ...] = ()
    #: An assistant turn's tool calls, after its text.
    calls: tuple[ToolCall, ...] = ()
    #: A tool turn: the tool whose result it carries (None: not known), and whether it failed.
    tool: str | None = None
    failed: bool = False

    @property
    def body(self) -> str:
        """What the arena is shown of the turn: its text, with its calls or its result's tool."""
        if self.role == "tool":
            head = f"{self.tool or 'The tool'} {'failed' if self.failed else 'returned'}:"
            return f"{head}\n{self.text}"
        return "\n".join(part for part in (self.text, *map(call_block, self.calls)) if part)

    @property
    def identity(self) -> str:
        """What names the turn in a history: its body, but only the calls of an answer that
        made some (clients keep or drop the text before calls as they like)."""
        return "\n".join(map(call_block, self.calls)) if self.calls else self.body


def require_user(turns: Sequence[Turn], *, param: str = "messages") -> None:
    """422 unless some turn is the user's: the arena answers a user message.

    `param` names where the turns were in the client's request, for the error.
    """
    if not any(t.role == "user" for t in turns):
        raise errors.unprocessable(
            f"The {param} must include at least one user message.", param=param
        )


def render(turns: Sequence[Turn], *, merge_system: bool = False) -> str:
    """`turns` as one message: a lone user turn verbatim, others as a tagged transcript."""
    if merge_system:
        turns = merged_system(turns)
    if len(turns) == 1 and turns[0].role == "user":
        return turns[0].text
    return "\n\n".join(f"<{t.role}>\n{t.body}\n</{t.role}>" for t in turns if t.body)


def joined_answers(turns: Sequence[Turn]) -> list[Turn]:
    """Consecutive assistant turns as one: clients split an answer with calls in several
    messages (Codex sends its calls, then its text)."""
    joined: list[Turn] = []
    for turn in turns:
        last = joined[-1] if joined else None
        if turn.role == "assistant" and last is not None and last.role == "assistant":
            text = "\n".join(t for t in (last.text, turn.text) if t)
            joined[-1] = Turn("assistant", text, last.images + turn.images, last.calls + turn.calls)
        else:
            joined.append(turn)
    return joined


def merged_system(turns: Sequence[Turn]) -> list[Turn]:
    """Every system turn's text in one system turn first, then the other turns in order."""
    system = [t.text for t in turns if t.role == "system" and t.text]
    rest = [t for t in turns if t.role != "system"]
    return [Turn("system", "\n\n".join(system)), *rest] if system else rest


def check_length(prompt: str, *, param: str = "messages", contract_chars: int = 0) -> None:
    """400 naming both sizes when `prompt` is longer than the arena takes.

    `contract_chars`: how much of it the tool contract takes, at its shortest.
    """
    if len(prompt) > MAX_PROMPT_CHARS:
        tools = f" (the tool definitions take {contract_chars:,})" if contract_chars else ""
        raise errors.invalid(
            f"The prompt is {len(prompt):,} characters long{tools}; the arena accepts at most "
            f"{MAX_PROMPT_CHARS:,}.",
            param=param,
            code="context_length_exceeded",
        )
