from __future__ import annotations

import pytest

from gateway.apis.openai.schemas import Message, turns_from_messages
from gateway.conversations.image_inputs import ImageSource
from gateway.conversations.transcript import (
    MAX_PROMPT_CHARS,
    Turn,
    check_length,
    merged_system,
    render,
    require_user,
)
from gateway.http.errors import ApiError


def prompt_from_messages(messages: list[Message], *, merge_system: bool = False) -> str:
    """What the core sends to start a session with `messages`."""
    turns = turns_from_messages(messages)
    require_user(turns)
    prompt = render(turns, merge_system=merge_system)
    check_length(prompt)
    return prompt


def msgs(*pairs: tuple[str, object]) -> list[Message]:
    return [Message.model_validate({"role": role, "content": content}) for role, content in pairs]


def test_a_lone_user_message_is_sent_verbatim() -> None:
    text = "  Hello,\n\nworld <user>  "
    assert prompt_from_messages(msgs(("user", text))) == text


def test_text_parts_are_joined_by_newlines() -> None:
    parts = [{"type": "text", "text": "first"}, {"type": "text", "text": "second"}]
    assert prompt_from_messages(msgs(("user", parts))) == "first\nsecond"


def test_a_conversation_becomes_a_tagged_transcript_in_order() -> None:
    messages = msgs(
        ("system", "Be terse."),
        ("user", "Hi"),
        ("assistant", "Hello."),
        ("user", [{"type": "text", "text": "How are you?"}]),
    )
    assert prompt_from_messages(messages) == (
        "<system>\nBe terse.\n</system>\n\n"
        "<user>\nHi\n</user>\n\n"
        "<assistant>\nHello.\n</assistant>\n\n"
        "<user>\nHow are you?\n</user>"
    )


def test_developer_is_the_system_role_and_empty_turns_are_left_out() -> None:
    messages = msgs(("developer", "Rules."), ("assistant", None), ("user", "Go"))
    assert prompt_from_messages(messages) == "<system>\nRules.\n</system>\n\n<user>\nGo\n</user>"


def test_a_trailing_assistant_turn_is_kept_as_a_prefill() -> None:
    messages = msgs(("user", "Count"), ("assistant", "1, 2,"))
    assert prompt_from_messages(messages).endswith("<assistant>\n1, 2,\n</assistant>")


@pytest.mark.parametrize(
    "messages", [[], msgs(("system", "Only rules.")), msgs(("assistant", "Hi"))]
)
def test_without_a_user_message_it_is_unprocessable(messages: list[Message]) -> None:
    with pytest.raises(ApiError) as caught:
        prompt_from_messages(messages)
    assert caught.value.status == 422
    assert caught.value.param == "messages"
    assert caught.value.message == "The messages must include at least one user message."


def test_image_parts_become_the_turns_images_and_leave_the_text() -> None:
    first = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}
    second = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    messages = msgs(("user", [first, {"type": "text", "text": "what are these?"}, second]))
    (turn,) = turns_from_messages(messages)
    assert turn.text == "what are these?"
    assert turn.images == (
        ImageSource("data:image/png;base64,AAAA"),
        ImageSource("https://example.com/cat.png"),
    )


def test_system_messages_stay_in_place_unless_merged_into_one_at_the_top() -> None:
    messages = msgs(
        ("system", "You are Ann."),
        ("user", "Hi"),
        ("assistant", "Hello."),
        ("system", "Stay in character."),
        ("user", "Who are you?"),
    )
    kept = prompt_from_messages(messages)
    assert kept.index("<system>\nStay in character.\n</system>") > kept.index("Hello.")
    merged = prompt_from_messages(messages, merge_system=True)
    assert merged.startswith(
        "<system>\nYou are Ann.\n\nStay in character.\n</system>\n\n<user>\nHi"
    )
    assert merged.count("<system>") == 1


def test_merging_without_system_messages_changes_nothing() -> None:
    turns = [Turn("user", "a"), Turn("assistant", "b")]
    assert merged_system(turns) == turns


def test_a_prompt_at_the_limit_passes_and_one_over_is_refused_with_both_sizes() -> None:
    assert len(prompt_from_messages(msgs(("user", "x" * MAX_PROMPT_CHARS)))) == MAX_PROMPT_CHARS
    with pytest.raises(ApiError) as caught:
        prompt_from_messages(msgs(("user", "x" * (MAX_PROMPT_CHARS + 1))))
    error = caught.value
    assert (error.status, error.param, error.code) == (400, "messages", "context_length_exceeded")
    assert error.message == (
        "The prompt is 113,568 characters long; the arena accepts at most 113,567."
    )


def test_the_limit_counts_the_whole_transcript() -> None:
    # Each message fits; together with the tags they do not.
    half = "y" * (MAX_PROMPT_CHARS // 2)
    with pytest.raises(ApiError):
        prompt_from_messages(msgs(("user", half), ("assistant", half), ("user", "and?")))


def test_the_parameter_named_in_errors_is_the_callers() -> None:
    with pytest.raises(ApiError) as caught:
        require_user([Turn("system", "rules")], param="input")
    assert (caught.value.param, caught.value.message) == (
        "input",
        "The input must include at least one user message.",
    )
