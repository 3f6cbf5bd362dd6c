"""Chat messages → the one prompt the arena takes.

The arena answers a single user message, so a conversation is sent as a transcript: each turn
between tags named after its role, in order. A lone user message is sent as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from gateway import errors
from gateway.openai_schemas import ImagePart, Message

#: The longest prompt the arena accepts, as measured by other bridges.
MAX_PROMPT_CHARS = 113_567

#: OpenAI's newer name for the system role.
_TAGS = {"developer": "system"}


def prompt_from_messages(messages: Sequence[Message]) -> str:
    """The prompt for `messages`; 400 for what cannot be sent, 422 without a user message."""
    if not any(m.role == "user" for m in messages):
        raise errors.unprocessable(
            "The messages must include at least one user message.", param="messages"
        )
    texts = [message_text(m, i) for i, m in enumerate(messages)]
    if len(messages) == 1:
        prompt = texts[0]
    else:
        turns = []
        for message, text in zip(messages, texts, strict=True):
            if text:
                tag = _TAGS.get(message.role, message.role)
                turns.append(f"<{tag}>\n{text}\n</{tag}>")
        prompt = "\n\n".join(turns)
    if len(prompt) > MAX_PROMPT_CHARS:
        raise errors.invalid(
            f"The prompt is {len(prompt):,} characters long; the arena accepts at most "
            f"{MAX_PROMPT_CHARS:,}.",
            param="messages",
            code="context_length_exceeded",
        )
    return prompt


def message_text(message: Message, index: int) -> str:
    """The text of one message: a string as is, text parts joined by newlines."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    for j, part in enumerate(content):
        if isinstance(part, ImagePart):
            raise errors.invalid(
                "Image input is not supported yet.", param=f"messages[{index}].content[{j}]"
            )
    return "\n".join(part.text for part in content)
