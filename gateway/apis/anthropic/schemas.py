"""The parts of Anthropic's Messages request the bridge reads, and the turns they make.

Parameters the arena has no use for (temperature, tools, metadata, …) are accepted and ignored.
Errors name the parameter the way Anthropic's API does (`messages.1.content.0.source`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, Literal, TypeVar

import orjson
from pydantic import Field, ValidationError

from gateway.answers.image_inputs import ImageSource
from gateway.answers.transcript import Turn
from gateway.apis.requests import Lenient
from gateway.http import errors


class TextBlock(Lenient):
    type: Literal["text"]
    text: str


class Base64Source(Lenient):
    type: Literal["base64"]
    media_type: Literal["image/jpeg", "image/png", "image/gif", "image/webp"]
    data: str


class URLSource(Lenient):
    type: Literal["url"]
    url: str


class ImageBlock(Lenient):
    type: Literal["image"]
    source: Annotated[Base64Source | URLSource, Field(discriminator="type")]


class ThinkingBlock(Lenient):
    """Reasoning from an earlier answer, sent back: the arena keeps none, so it is left out."""

    type: Literal["thinking", "redacted_thinking"]


class ToolUseBlock(Lenient):
    type: Literal["tool_use"]
    id: str
    name: str
    input: Any = None


class ToolResultBlock(Lenient):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[Annotated[TextBlock | ImageBlock, Field(discriminator="type")]] = ""
    is_error: bool = False


ContentBlock = Annotated[
    TextBlock | ImageBlock | ThinkingBlock | ToolUseBlock | ToolResultBlock,
    Field(discriminator="type"),
]


class MessageParam(Lenient):
    role: Literal["user", "assistant"]
    content: str | list[ContentBlock]


class ThinkingConfig(Lenient):
    type: Literal["enabled", "disabled", "adaptive"]


class CountTokensRequest(Lenient):
    model: str
    messages: list[MessageParam]
    system: str | list[TextBlock] | None = None
    thinking: ThinkingConfig | None = None

    def turns(self) -> list[Turn]:
        """The conversation as the completion core takes it: the system prompt first."""
        system = self.system if isinstance(self.system, str) else _joined(self.system or [])
        turns = [Turn("system", system)] if system else []
        for message in self.messages:
            text, images = _content(message.content)
            turns.append(Turn(message.role, text, images))
        return turns


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
    stream: bool = False

    @property
    def show_thinking(self) -> bool:
        """Reasoning is shown as thinking blocks unless the client turned thinking off."""
        return self.thinking is None or self.thinking.type != "disabled"


_Request = TypeVar("_Request", bound=CountTokensRequest)


def parse_messages_request(raw: bytes) -> MessagesRequest:
    return _parse(raw, MessagesRequest)


def parse_count_tokens_request(raw: bytes) -> CountTokensRequest:
    return _parse(raw, CountTokensRequest)


def _parse(raw: bytes, model: type[_Request]) -> _Request:
    """The request in `raw`, or a 400 that says what is wrong, in Anthropic's words."""
    data = errors.json_object(raw)
    try:
        request = model.model_validate(data)
    except ValidationError as exc:
        param, err = errors.deepest(exc, data)
        where = _anthropic_path(param)
        raise errors.invalid(
            f"{where}: {err['msg']}" if where else err["msg"], param=param
        ) from None
    _check_roles(request.messages)
    return request


def _check_roles(messages: Sequence[MessageParam]) -> None:
    """Anthropic's rules: a user message first, then user and assistant in turn."""
    if not messages:
        raise errors.invalid("messages: at least one message is required", param="messages")
    if messages[0].role != "user":
        raise errors.invalid(
            'messages.0.role: the first message must use the "user" role', param="messages[0].role"
        )
    for i in range(1, len(messages)):
        if messages[i].role == messages[i - 1].role:
            raise errors.invalid(
                f'messages.{i}.role: roles must alternate between "user" and "assistant", '
                f'but found multiple "{messages[i].role}" roles in a row',
                param=f"messages[{i}].role",
            )


def _content(content: str | list[ContentBlock]) -> tuple[str, tuple[ImageSource, ...]]:
    """The text of a message's content and its images, in order."""
    if isinstance(content, str):
        return content, ()
    texts: list[str] = []
    images: list[ImageSource] = []
    for block in content:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ImageBlock):
            images.append(_image(block))
        elif isinstance(block, ToolUseBlock):
            # The arena's models cannot call tools; a call from another model's earlier turn is
            # shown as text, so that the conversation still reads in order.
            texts.append(f"[tool call {block.name}: {orjson.dumps(block.input).decode()}]")
        elif isinstance(block, ToolResultBlock):
            if isinstance(block.content, str):
                result = block.content
            else:
                result = _joined(block.content)
                images += [_image(b) for b in block.content if isinstance(b, ImageBlock)]
            label = "tool error" if block.is_error else "tool result"
            texts.append(f"[{label}]\n{result}")
    return "\n".join(texts), tuple(images)


def _image(block: ImageBlock) -> ImageSource:
    source = block.source
    if isinstance(source, Base64Source):
        return ImageSource.from_base64(source.media_type, source.data)
    return ImageSource(source.url)


def _joined(blocks: Sequence[TextBlock | ImageBlock]) -> str:
    return "\n".join(b.text for b in blocks if isinstance(b, TextBlock))


def _anthropic_path(param: str) -> str:
    """`messages[1].content[0]` → `messages.1.content.0`, as Anthropic's errors name it."""
    return param.replace("[", ".").replace("]", "")
