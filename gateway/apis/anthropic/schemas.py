"""The parts of Anthropic's Messages request the bridge reads, and the turns they make.

Parameters the arena has no use for (temperature, metadata, context_management, cache_control,
…) are accepted and ignored, and so are content blocks of kinds it cannot show. Coding agents
put `system` messages among the others (kept where they are). Tools are the client's own
(`custom`) tools; server tools and deferred ones are left out. Earlier `tool_use` blocks and
their `tool_result`s are turns of the conversation. Errors name the parameter the way
Anthropic's API does (`messages.1.content.0.source`).
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

from pydantic import Discriminator, Field, Tag, ValidationError

from gateway.answers.json_mode import JsonFormat
from gateway.answers.tools.definitions import Choice, Tool, ToolCall, ToolUse
from gateway.apis.requests import Lenient, tag
from gateway.conversations.image_inputs import ImageSource
from gateway.conversations.transcript import Turn
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


class OtherBlock(Lenient):
    """A block the arena cannot be shown (documents, server tools' results, …): left out."""

    type: str


def _block_type(value: Any) -> str:
    """A block's tag: its type, `thinking` for both kinds of it, `other` for unknown ones."""
    kind = tag(value, {"text", "image", "tool_use", "tool_result", "redacted_thinking", "thinking"})
    return "thinking" if kind == "redacted_thinking" else kind


def _result_block_type(value: Any) -> str:
    return tag(value, {"text", "image"})


ResultBlock = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[OtherBlock, Tag("other")],
    Discriminator(_result_block_type),
]


class ToolResultBlock(Lenient):
    type: Literal["tool_result"]
    tool_use_id: str
    content: str | list[ResultBlock] = ""
    is_error: bool = False


ContentBlock = Annotated[
    Annotated[TextBlock, Tag("text")]
    | Annotated[ImageBlock, Tag("image")]
    | Annotated[ThinkingBlock, Tag("thinking")]
    | Annotated[ToolUseBlock, Tag("tool_use")]
    | Annotated[ToolResultBlock, Tag("tool_result")]
    | Annotated[OtherBlock, Tag("other")],
    Discriminator(_block_type),
]


class MessageParam(Lenient):
    #: `system`: what coding agents put among the messages (Anthropic's API takes it).
    role: Literal["user", "assistant", "system"]
    content: str | list[ContentBlock]


class ThinkingConfig(Lenient):
    type: Literal["enabled", "disabled", "adaptive"]
    #: `omitted`: the client wants no thinking text.
    display: str | None = None


class ToolParam(Lenient):
    name: str
    description: str | None = None
    input_schema: dict[str, Any] | None = None
    #: Anthropic's own tools (`web_search_20250305`, `bash_20250124`, …) have a type.
    type: str | None = None
    #: Loaded later through a search tool: not offered yet.
    defer_loading: bool = False


class ToolChoice(Lenient):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool = False


class OutputFormat(Lenient):
    type: Literal["json_schema"]
    #: `schema` in Anthropic's request; a pydantic field of that name would shadow BaseModel's.
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")


class OutputConfig(Lenient):
    """`effort` and the like are ignored; a `format` changes the answer."""

    format: OutputFormat | None = None


class CountTokensRequest(Lenient):
    model: str
    messages: list[MessageParam]
    system: str | list[TextBlock] | None = None
    thinking: ThinkingConfig | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoice | None = None

    def turns(self) -> list[Turn]:
        """The conversation as the completion core takes it: the system prompt first."""
        system = self.system if isinstance(self.system, str) else _joined(self.system or [])
        turns = [Turn("system", system)] if system else []
        names: dict[str, str] = {}  # tool_use id → tool name, for the results
        for message in self.messages:
            turns += _turns(message, names)
        return turns

    def tool_use(self) -> ToolUse | None:
        """The client's tools, and how the model may call them; None without any."""
        tools = [
            Tool(t.name, t.description or "", t.input_schema or {})
            for t in self.tools or []
            if t.type in (None, "custom") and not t.defer_loading
        ]
        if not tools:
            return None
        choice = self.tool_choice or ToolChoice(type="auto")
        kinds: dict[str, Choice] = {"auto": "auto", "any": "required", "tool": "required"}
        return ToolUse(
            tools,
            kinds.get(choice.type, "none"),
            named=choice.name if choice.type == "tool" else None,
            parallel=not choice.disable_parallel_tool_use,
        )


class MessagesRequest(CountTokensRequest):
    max_tokens: int = Field(ge=1)
    stream: bool = False
    stop_sequences: list[str] | None = None
    output_config: OutputConfig | None = None

    @property
    def json_format(self) -> JsonFormat | None:
        """Structured output (`output_config.format`), as JSON mode."""
        config = self.output_config
        if config is None or config.format is None:
            return None
        return JsonFormat(config.format.json_schema)

    @property
    def show_thinking(self) -> bool:
        """Reasoning is shown as thinking blocks unless the client turned thinking (or its
        text) off."""
        thinking = self.thinking
        return thinking is None or (thinking.type != "disabled" and thinking.display != "omitted")


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
    """Anthropic's rules: a user message first, then user and assistant in turn (system
    messages aside)."""
    if not messages:
        raise errors.invalid("messages: at least one message is required", param="messages")
    if messages[0].role != "user":
        raise errors.invalid(
            'messages.0.role: the first message must use the "user" role', param="messages[0].role"
        )
    spoken = [(i, m) for i, m in enumerate(messages) if m.role != "system"]
    for (_, before), (i, message) in itertools.pairwise(spoken):
        if message.role == before.role:
            raise errors.invalid(
                f'messages.{i}.role: roles must alternate between "user" and "assistant", '
                f'but found multiple "{message.role}" roles in a row',
                param=f"messages[{i}].role",
            )


def _turns(message: MessageParam, names: dict[str, str]) -> list[Turn]:
    """One message's turns: a user message's tool results come first, each a turn of its own."""
    content = message.content
    if isinstance(content, str):
        return [Turn(message.role, content)]
    texts: list[str] = []
    images: list[ImageSource] = []
    calls: list[ToolCall] = []
    results: list[Turn] = []
    for block in content:
        if isinstance(block, TextBlock):
            texts.append(block.text)
        elif isinstance(block, ImageBlock):
            images.append(_image(block))
        elif isinstance(block, ToolUseBlock):
            arguments = block.input if isinstance(block.input, Mapping) else {"input": block.input}
            calls.append(ToolCall(block.id, block.name, arguments))
            names[block.id] = block.name
        elif isinstance(block, ToolResultBlock):
            results.append(_result(block, names.get(block.tool_use_id)))
    if not texts and not images and not calls:
        return results
    return [*results, Turn(message.role, "\n".join(texts), tuple(images), calls=tuple(calls))]


def _result(block: ToolResultBlock, tool: str | None) -> Turn:
    if isinstance(block.content, str):
        return Turn("tool", block.content, tool=tool, failed=block.is_error)
    images = tuple(_image(b) for b in block.content if isinstance(b, ImageBlock))
    return Turn("tool", _joined(block.content), images, tool=tool, failed=block.is_error)


def _image(block: ImageBlock) -> ImageSource:
    source = block.source
    if isinstance(source, Base64Source):
        return ImageSource.from_base64(source.media_type, source.data)
    return ImageSource(source.url)


def _joined(blocks: Sequence[TextBlock | ImageBlock | OtherBlock]) -> str:
    return "\n".join(b.text for b in blocks if isinstance(b, TextBlock))


def _anthropic_path(param: str) -> str:
    """`messages[1].content[0]` → `messages.1.content.0`, as Anthropic's errors name it."""
    return param.replace("[", ".").replace("]", "")
