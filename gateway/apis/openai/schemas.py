"""The parts of OpenAI's chat completion request the bridge reads; everything else is ignored.

Tools are `function` tools (others are ignored); `tool_choice` and `parallel_tool_calls` say
how the model may call them. Earlier calls (an assistant message's `tool_calls`) and their
results (`tool` messages) are turns of the conversation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError

from gateway.answers.json_mode import JsonFormat
from gateway.answers.tools.calls import decode_arguments
from gateway.answers.tools.definitions import Choice, Tool, ToolCall, ToolUse
from gateway.apis.requests import Lenient
from gateway.conversations.image_inputs import ImageSource
from gateway.conversations.transcript import Role as TurnRole
from gateway.conversations.transcript import Turn
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


class FunctionCall(Lenient):
    name: str
    #: JSON text, as the model wrote it.
    arguments: str = ""


class ToolCallParam(Lenient):
    id: str = ""
    function: FunctionCall


class Function(Lenient):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolParam(Lenient):
    type: str = "function"
    function: Function | None = None


class NamedFunction(Lenient):
    name: str


class NamedToolChoice(Lenient):
    type: Literal["function"] = "function"
    function: NamedFunction


class JsonSchemaFormat(Lenient):
    name: str = ""
    #: `schema` in OpenAI's request; a pydantic field of that name would shadow BaseModel's.
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")


class ResponseFormat(Lenient):
    type: Literal["text", "json_object", "json_schema"]
    json_schema: JsonSchemaFormat | None = None


class Message(Lenient):
    role: Role
    content: str | list[ContentPart] | None = Field(default=None, validate_default=True)
    tool_calls: list[ToolCallParam] | None = None
    #: A `tool` message: the call it answers.
    tool_call_id: str | None = None

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
    tools: list[ToolParam] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    stop: str | list[str] | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    response_format: ResponseFormat | None = None

    @property
    def include_usage(self) -> bool:
        return self.stream_options is not None and self.stream_options.include_usage

    @property
    def stops(self) -> list[str]:
        return [self.stop] if isinstance(self.stop, str) else list(self.stop or [])

    @property
    def json_format(self) -> JsonFormat | None:
        """JSON mode (`json_object`, or `json_schema` with its schema); None for text."""
        fmt = self.response_format
        if fmt is None or fmt.type == "text":
            return None
        return JsonFormat(fmt.json_schema.json_schema if fmt.json_schema is not None else None)

    def tool_use(self) -> ToolUse | None:
        """The function tools offered, and how the model may call them; None without tools."""
        tools = [
            Tool(t.function.name, t.function.description or "", t.function.parameters or {})
            for t in self.tools or []
            if t.type == "function" and t.function is not None
        ]
        if not tools:
            return None
        named = (
            self.tool_choice.function.name
            if isinstance(self.tool_choice, NamedToolChoice)
            else None
        )
        choice: Choice = "required" if named else "auto"
        if isinstance(self.tool_choice, str):
            choice = self.tool_choice
        return ToolUse(tools, choice, named, parallel=self.parallel_tool_calls is not False)


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
    names: dict[str, str] = {}  # call id → tool name, for the results
    turns = []
    for m in messages:
        calls = tuple(
            ToolCall(c.id, c.function.name, decode_arguments(c.function.arguments))
            for c in m.tool_calls or []
        )
        names |= {call.id: call.name for call in calls}
        tool = names.get(m.tool_call_id or "") if m.role == "tool" else None
        turns.append(
            Turn(_TURN_ROLES[m.role], message_text(m), message_images(m), calls=calls, tool=tool)
        )
    return turns


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
