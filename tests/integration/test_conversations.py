"""Conversations through the whole bridge: each turn continues the arena thread of the last.

openai SDK → gateway → Redis/arq → two browser workers → the fake arena, every process real.
What the arena was asked (create, post, retry) is read back from the fake arena's log. The
conversation itself is held on both versions of the arena (`each_site`).
"""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from shared.arena.site import STREAM_PREFIX
from tests.fakearena.replies import Ask, answer_text
from tests.fakearena.scenario import Site
from tests.support.sites import DEFAULT, SITES, mode_refusal, on_site
from tests.support.stack import Stack, running, unique

pytestmark = pytest.mark.browser

CHAT = DEFAULT.chat  # gemini-2.5-pro on either site


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway and two workers: a thread must stay with the worker whose account opened it."""
    with running(tmp_path_factory.mktemp("conversations"), "conv-1", "conv-2") as stack:
        yield stack


@pytest.fixture(params=SITES)
def each_site(request: pytest.FixtureRequest) -> tuple[Stack, Site]:
    return on_site(request)


def start(stack: Stack) -> int:
    """Where a test's requests start in the arena's log (prompts are unique: no reset needed,
    which would also void the tokens the workers minted ahead)."""
    return len(stack.arena_log()["requests"])


@pytest.fixture
def since(stack: Stack) -> int:
    return start(stack)


def ask(stack: Stack, messages: list[dict], *, stream: bool = False) -> str:
    if stream:
        chunks = stack.openai().chat.completions.create(model=CHAT, messages=messages, stream=True)
        return "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return (
        stack.openai()
        .chat.completions.create(model=CHAT, messages=messages)
        .choices[0]
        .message.content
    ) or ""


def expected(turn: int, first: str, prompt: str, retry: int = 0) -> str:
    return answer_text(
        Ask(model=CHAT, kind="chat", turn=turn, first=first, prompt=prompt, retry=retry)
    )


def stream_requests(stack: Stack, since: int) -> list[dict]:
    """The arena's stream requests (create, post, retry) since `since`, in order.

    A reCAPTCHA refusal (403) is left out: the worker retries it with a new token (on the
    captured site, a regenerate's first token is for the wrong action); so is a create refused
    for its mode, which the worker sends again in the other one.
    """
    return [
        r
        for r in stack.arena_log()["requests"][since:]
        if r["path"].startswith(STREAM_PREFIX) and r["status"] != 403 and not mode_refusal(r)
    ]


def endpoint(request: dict) -> str:
    return request["path"][len(STREAM_PREFIX) :].split("/", 1)[0]


def test_five_turns_are_one_create_then_four_posts_from_one_worker_across_a_gateway_restart(
    each_site: tuple[Stack, Site],
) -> None:
    stack, _ = each_site
    since = start(stack)
    first = unique("Tell me about otters")
    messages: list[dict] = [{"role": "user", "content": first}]
    prompts = [first]
    for turn in range(1, 6):
        if turn == 4:  # nothing about the conversation lives in the gateway
            stack.stop_gateway()
            stack.start_gateway()
        answer = ask(stack, messages, stream=turn % 2 == 0)
        assert answer == expected(turn, first, prompts[-1])  # the arena's own turn count
        messages.append({"role": "assistant", "content": answer})
        prompts.append(unique(f"question {turn + 1}"))
        messages.append({"role": "user", "content": prompts[-1]})

    requests = stream_requests(stack, since)
    assert [endpoint(r) for r in requests] == ["create-evaluation", *["post-to-evaluation"] * 4]
    assert all(r["status"] == 200 for r in requests)
    session = requests[0]["body"]["id"]
    assert all(r["body"]["id"] == session for r in requests)
    assert len({r["identity"] for r in requests}) == 1  # one browser: the worker that opened it
    # Each post carried only its own new message.
    assert [r["body"]["userMessage"]["content"] for r in requests] == prompts[:5]


def test_an_edited_history_starts_a_new_session_carrying_the_transcript(
    stack: Stack, since: int
) -> None:
    first, second = unique("Name a colour"), unique("And a fruit?")
    answer = ask(stack, [{"role": "user", "content": first}])
    edited = first + " please"
    history = [
        {"role": "system", "content": "Answer briefly."},
        {"role": "user", "content": edited},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": second},
    ]
    ask(stack, history)
    requests = stream_requests(stack, since)
    assert [endpoint(r) for r in requests] == ["create-evaluation", "create-evaluation"]
    transcript = requests[1]["body"]["userMessage"]["content"]
    assert transcript == (
        f"<system>\nAnswer briefly.\n</system>\n\n<user>\n{edited}\n</user>\n\n"
        f"<assistant>\n{answer}\n</assistant>\n\n<user>\n{second}\n</user>"
    )
    assert requests[1]["body"]["id"] != requests[0]["body"]["id"]


def test_a_regenerate_retries_the_answer_and_the_conversation_goes_on_from_the_new_one(
    each_site: tuple[Stack, Site],
) -> None:
    stack, _ = each_site
    since = start(stack)
    first, second = unique("Pick a number"), unique("Double it")
    history = [{"role": "user", "content": first}]
    ask(stack, history)
    regenerated = ask(stack, history, stream=True)
    assert regenerated == expected(1, first, first, retry=1)
    ask(
        stack,
        [
            *history,
            {"role": "assistant", "content": regenerated},
            {"role": "user", "content": second},
        ],
    )

    requests = stream_requests(stack, since)
    assert [endpoint(r) for r in requests] == [
        "create-evaluation",
        "retry-evaluation-session-message",
        "post-to-evaluation",
    ]
    created = requests[0]["body"]
    assert requests[1]["method"] == "PUT"
    assert requests[1]["path"].endswith(f"/{created['id']}/messages/{created['modelAMessageId']}")
    assert requests[2]["body"]["id"] == created["id"]


def test_a_thread_the_arena_no_longer_has_goes_on_in_a_new_session(stack: Stack) -> None:
    first, second = unique("Say hi"), unique("Say bye")
    answer = ask(stack, [{"role": "user", "content": first}])
    stack.arena("POST", "reset")  # the arena forgets the session (and its log)
    history = [
        {"role": "user", "content": first},
        {"role": "assistant", "content": answer},
        {"role": "user", "content": second},
    ]
    followed = ask(stack, history, stream=True)
    transcript = f"<user>\n{first}\n</user>\n\n<assistant>\n{answer}\n</assistant>\n\n<user>\n{second}\n</user>"
    assert followed == expected(1, transcript, transcript)  # never an error for the client
    requests = stream_requests(stack, 0)
    assert [(endpoint(r), r["status"]) for r in requests] == [
        ("post-to-evaluation", 404),
        ("create-evaluation", 200),
    ]


def test_an_anthropic_conversation_continues_its_thread_and_regenerates_with_retry(
    stack: Stack, since: int
) -> None:
    anthropic_client = anthropic.Anthropic(
        base_url=stack.base_url, api_key="unused", max_retries=0, timeout=60
    )
    first, second = unique("Describe a heron"), unique("Where does it live?")
    messages: list[dict] = [{"role": "user", "content": first}]
    reply = anthropic_client.messages.create(model=CHAT, max_tokens=512, messages=messages)
    messages += [
        {"role": "assistant", "content": reply.content},
        {"role": "user", "content": second},
    ]
    with anthropic_client.messages.stream(model=CHAT, max_tokens=512, messages=messages) as stream:
        streamed = stream.get_final_text()
    assert streamed == expected(2, first, second)
    regenerated = anthropic_client.messages.create(model=CHAT, max_tokens=512, messages=messages)
    assert regenerated.content[0].text == expected(2, first, second, retry=1)

    requests = stream_requests(stack, since)
    assert [endpoint(r) for r in requests] == [
        "create-evaluation",
        "post-to-evaluation",
        "retry-evaluation-session-message",
    ]
    assert len({r["identity"] for r in requests}) == 1
