"""The parts of OpenAI's Responses request the bridge reads, and the turns they make.

`input` is a string (one user message) or a list of items: messages whose content is a string
or `input_text` / `input_image` parts (`output_text` / `refusal` for earlier answers), earlier
`function_call`s and their `function_call_output`s. `reasoning` items and items of other kinds
are left out (the arena keeps no reasoning). Tools are `function`s, alone or in a `namespace`;
hosted tools (`web_search`, …) are left out. `previous_response_id` continues a response the
bridge answered (`gateway.apis.responses.stored`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from gateway.answers.json_mode import JsonFormat
from gateway.answers.tools.calls import decode_arguments
from gateway.answers.tools.definitions import Choice, Tool, ToolCall, ToolUse
from gateway.apis.requests import Lenient, tag
from gateway.conversations.image_inputs import ImageSource
from gateway.conversations.transcript import Role as TurnRole
from gateway.conversations.transcript import Turn
from gateway.http import errors


class InputText(Lenient):
    type: Literal["input_text", "output_text"]
    text: str


class Refusal(Lenient):
    type: Literal["refusal"]
    refusal: str


class InputImage(Lenient):
    type: Literal["input_image"]
    #: A data: or http(s) URL; images uploaded to OpenAI (`file_id`) do not exist here.
    image_url: str


ContentPart = Annotated[InputText | Refusal | InputImage, Field(discriminator="type")]
Role = Literal["user", "assistant", "system", "developer"]


class MessageItem(Lenient):
    type: Literal["message"] = "message"
    role: Role
    content: str | list[ContentPart]


class FunctionCallItem(Lenient):
    type: Literal["function_call"]
    call_id: str
    name: str
    arguments: str = ""
    namespace: str | None = None


class FunctionCallOutputItem(Lenient):
    type: Literal["function_call_output"]
    call_id: str
    output: str | list[ContentPart] = ""


class OtherItem(Lenient):
    """Reasoning (the arena keeps none) and items of kinds the arena cannot be shown."""

    type: str


def _item_type(value: Any) -> str:
    # Easy input messages ({"role", "content"}) leave the type out.
    return tag(value, ("message", "function_call", "function_call_output"), untyped="message")


Item = Annotated[
    Annotated[MessageItem, Tag("message")]
    | Annotated[FunctionCallItem, Tag("function_call")]
    | Annotated[FunctionCallOutputItem, Tag("function_call_output")]
    | Annotated[OtherItem, Tag("other")],
    Discriminator(_item_type),
]


class FunctionTool(Lenient):
    type: Literal["function"]
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None


class NamespaceTool(Lenient):
    type: Literal["namespace"]
    name: str
    tools: list[FunctionTool | OtherItem] = Field(default_factory=list)


def _tool_type(value: Any) -> str:
    return tag(value, ("function", "namespace"))


ToolParam = Annotated[
    Annotated[FunctionTool, Tag("function")]
    | Annotated[NamespaceTool, Tag("namespace")]
    | Annotated[OtherItem, Tag("other")],
    Discriminator(_tool_type),
]


class TextFormat(Lenient):
    type: Literal["text", "json_object", "json_schema"] = "text"
    #: `schema` in OpenAI's request; a pydantic field of that name would shadow BaseModel's.
    json_schema: dict[str, Any] | None = Field(default=None, alias="schema")


class TextConfig(Lenient):
    format: TextFormat | None = None


class NamedToolChoice(Lenient):
    type: str
    name: str | None = None


_TURN_ROLES: Mapping[Role, TurnRole] = {
    "user": "user",
    "assistant": "assistant",
    "system": "system",
    "developer": "system",
}


class ResponsesRequest(Lenient):
    model: str
    input: str | list[Item]
    instructions: str | None = None
    stream: bool = False
    previous_response_id: str | None = None
    tools: list[ToolParam] | None = None
    tool_choice: Literal["auto", "none", "required"] | NamedToolChoice | None = None
    parallel_tool_calls: bool | None = None
    max_output_tokens: int | None = Field(default=None, ge=1)
    store: bool = True
    text: TextConfig | None = None

    @property
    def json_format(self) -> JsonFormat | None:
        """JSON mode (`text.format`: `json_object`, or `json_schema` with its schema)."""
        fmt = self.text.format if self.text is not None else None
        return None if fmt is None or fmt.type == "text" else JsonFormat(fmt.json_schema)

    def turns(self, earlier: Sequence[Turn] = ()) -> list[Turn]:
        """The conversation as the completion core takes it: the instructions first, then
        `earlier` (the previous response's conversation), then `input`."""
        system = [Turn("system", self.instructions)] if self.instructions else []
        turns = [*system, *earlier]
        if isinstance(self.input, str):
            return [*turns, Turn("user", self.input)]
        # Call id → tool name, for the outputs.
        names = {call.id: call.qualified for turn in earlier for call in turn.calls}
        for item in self.input:
            if isinstance(item, MessageItem):
                turns.append(_turn(item))
            elif isinstance(item, FunctionCallItem):
                call = ToolCall(
                    item.call_id, item.name, decode_arguments(item.arguments), item.namespace
                )
                names[call.id] = call.qualified
                # A call belongs to the answer whose text came just before it.
                if turns and turns[-1].role == "assistant":
                    last = turns.pop()
                    turns.append(Turn("assistant", last.text, last.images, (*last.calls, call)))
                else:
                    turns.append(Turn("assistant", "", calls=(call,)))
            elif isinstance(item, FunctionCallOutputItem):
                text, images = _parts(item.output)
                turns.append(Turn("tool", text, images, tool=names.get(item.call_id)))
        return turns

    def tool_use(self) -> ToolUse | None:
        """The function tools offered (namespaces' too), and how the model may call them."""
        tools: list[Tool] = []
        for tool in self.tools or []:
            if isinstance(tool, FunctionTool):
                tools.append(_tool(tool))
            elif isinstance(tool, NamespaceTool):
                tools += [_tool(t, tool.name) for t in tool.tools if isinstance(t, FunctionTool)]
        if not tools:
            return None
        choice: Choice = "auto"
        named = None
        if isinstance(self.tool_choice, str):
            choice = self.tool_choice
        elif self.tool_choice is not None and self.tool_choice.type == "function":
            choice, named = "required", self.tool_choice.name
        return ToolUse(tools, choice, named, parallel=self.parallel_tool_calls is not False)


def parse_responses_request(raw: bytes) -> ResponsesRequest:
    """The request in `raw`, or a 400 that says what is wrong with it."""
    return errors.parse_body(raw, ResponsesRequest)


def _tool(tool: FunctionTool, namespace: str | None = None) -> Tool:
    return Tool(tool.name, tool.description or "", tool.parameters or {}, namespace)


def _turn(item: MessageItem) -> Turn:
    return Turn(_TURN_ROLES[item.role], *_parts(item.content))


def _parts(content: str | list[ContentPart]) -> tuple[str, tuple[ImageSource, ...]]:
    if isinstance(content, str):
        return content, ()
    texts = []
    images = []
    for part in content:
        if isinstance(part, InputText):
            texts.append(part.text)
        elif isinstance(part, Refusal):
            texts.append(part.refusal)
        else:
            images.append(ImageSource(part.image_url))
    return "\n".join(texts), tuple(images)
