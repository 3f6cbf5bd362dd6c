"""The parts of OpenAI's chat completion request the bridge reads; everything else is ignored."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from gateway.answers.image_inputs import ImageSource
from gateway.answers.transcript import Role as TurnRole
from gateway.answers.transcript import Turn
from gateway.apis.requests import Lenient
from gateway.http import errors


class TextPart(Lenient):
    type: Literal["text"]
    text: str


class ImageURL(Lenient):
    url: str


class ImagePart(Lenient):
    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]
Role = Literal["system", "developer", "user", "assistant", "tool"]


class Message(Lenient):
    role: Role
    content: str | list[ContentPart] | None = Field(default=None, validate_default=True)

    @field_validator("content")
    @classmethod
    def _content_required(cls, value: object, info: ValidationInfo) -> object:
        # Only an assistant turn may go without content (it may carry tool calls alone).
        if value is None and info.data.get("role") not in (None, "assistant"):
            raise PydanticCustomError("missing", "Field required")
        return value


class StreamOptions(Lenient):
    include_usage: bool = False


class ChatCompletionRequest(Lenient):
    model: str
    messages: list[Message]
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage


def parse_chat_request(raw: bytes) -> ChatCompletionRequest:
    """The request in `raw`, or a 400 that says what is wrong with it."""
    return errors.parse_body(raw, ChatCompletionRequest)


#: `developer` is OpenAI's newer name for the system role.
_TURN_ROLES: Mapping[Role, TurnRole] = {
    "system": "system",
    "developer": "system",
    "user": "user",
    "assistant": "assistant",
    "tool": "tool",
}


def turns_from_messages(messages: Sequence[Message]) -> list[Turn]:
    """The conversation in `messages`, as the completion core takes it."""
    return [Turn(_TURN_ROLES[m.role], message_text(m), message_images(m)) for m in messages]


def message_text(message: Message) -> str:
    """The text of one message: a string as is, text parts joined by newlines."""
    content = message.content
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(part.text for part in content if isinstance(part, TextPart))


def message_images(message: Message) -> tuple[ImageSource, ...]:
    """The images of one message (`image_url` parts: data: or http(s) URLs), in order."""
    if not isinstance(message.content, list):
        return ()
    return tuple(ImageSource(p.image_url.url) for p in message.content if isinstance(p, ImagePart))
