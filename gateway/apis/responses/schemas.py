"""The parts of OpenAI's Responses request the bridge reads, and the turns they make.

`input` is a string (one user message) or a list of items: messages whose content is a string
or `input_text` / `input_image` parts (`output_text` / `refusal` for earlier answers). Earlier
`reasoning` items are left out (the arena keeps no reasoning). The bridge stores nothing, so
`previous_response_id` is refused: send the whole conversation in `input`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, Tag

from gateway.answers.image_inputs import ImageSource
from gateway.answers.transcript import Role as TurnRole
from gateway.answers.transcript import Turn
from gateway.apis.requests import Lenient
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


class ReasoningItem(Lenient):
    type: Literal["reasoning"]


def _item_type(value: Any) -> str | None:
    # Easy input messages ({"role", "content"}) leave the type out.
    if isinstance(value, Mapping):
        return value.get("type", "message")
    return getattr(value, "type", None)


Item = Annotated[
    Annotated[MessageItem, Tag("message")] | Annotated[ReasoningItem, Tag("reasoning")],
    Discriminator(_item_type),
]

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

    def turns(self) -> list[Turn]:
        """The conversation as the completion core takes it: the instructions first."""
        turns = [Turn("system", self.instructions)] if self.instructions else []
        if isinstance(self.input, str):
            return [*turns, Turn("user", self.input)]
        for item in self.input:
            if isinstance(item, MessageItem):
                turns.append(_turn(item))
        return turns


def parse_responses_request(raw: bytes) -> ResponsesRequest:
    """The request in `raw`, or a 400 that says what is wrong with it."""
    request = errors.parse_body(raw, ResponsesRequest)
    if request.previous_response_id is not None:
        raise errors.invalid(
            "previous_response_id is not supported: the bridge stores no responses. "
            "Send the whole conversation in `input`.",
            param="previous_response_id",
        )
    return request


def _turn(item: MessageItem) -> Turn:
    role = _TURN_ROLES[item.role]
    if isinstance(item.content, str):
        return Turn(role, item.content)
    texts = []
    images = []
    for part in item.content:
        if isinstance(part, InputText):
            texts.append(part.text)
        elif isinstance(part, Refusal):
            texts.append(part.refusal)
        else:
            images.append(ImageSource(part.image_url))
    return Turn(role, "\n".join(texts), tuple(images))
