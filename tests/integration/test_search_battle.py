"""Search citations and battles through the whole bridge, with the openai SDK as the client.

openai SDK → gateway → Redis/arq → browser worker → the fake arena, every process real, on both
versions of the arena (`each_site`).
"""

from __future__ import annotations

from collections.abc import Iterator

import openai
import pytest

from tests.fakearena.replies import Ask, answer_text, brief
from tests.fakearena.scenario import Site
from tests.support.sites import DEFAULT, MODELS, SITES, on_site
from tests.support.stack import Stack, running, unique

pytestmark = pytest.mark.browser

LEFT, RIGHT = DEFAULT.chat, DEFAULT.other_chat  # on either site


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running(tmp_path_factory.mktemp("search-battle"), "sb-1") as stack:
        yield stack


@pytest.fixture(params=SITES)
def each_site(request: pytest.FixtureRequest) -> tuple[Stack, Site]:
    return on_site(request)


def expected_annotations(prompt: str, search: str) -> list[dict]:
    """The fake cites source 1 after the answer's 2nd word and source 2 after its 4th."""
    text = answer_text(Ask(model=search, kind="search", turn=1, first=prompt, prompt=prompt))
    words = text.split(" ")
    ends = [len(" ".join(words[:2])) + 1, len(" ".join(words[:4])) + 1]
    return [
        {
            "type": "url_citation",
            "url_citation": {
                "url": f"https://example.com/search/{n}",
                "title": f"Result {n} for «{brief(prompt)}»",
                "start_index": start,
                "end_index": end,
            },
        }
        for n, start, end in ((1, 0, ends[0]), (2, ends[0], ends[1]))
    ]


def test_search_sources_are_url_citation_annotations_on_the_message(
    each_site: tuple[Stack, Site],
) -> None:
    stack, site = each_site
    search = MODELS[site].search
    prompt = unique("who won the match")
    message = (
        stack.openai()
        .chat.completions.create(model=search, messages=[{"role": "user", "content": prompt}])
        .choices[0]
        .message
    )
    assert [a.model_dump() for a in message.annotations] == expected_annotations(prompt, search)
    first = message.annotations[0].url_citation
    assert message.content[first.start_index : first.end_index] == "Turn 1 "


def test_streamed_search_sources_arrive_with_the_finish_and_the_sdk_helper_parses_them(
    stack: Stack,
) -> None:
    prompt = unique("latest news")
    with stack.openai().chat.completions.stream(
        model=DEFAULT.search, messages=[{"role": "user", "content": prompt}]
    ) as stream:
        final = stream.get_final_completion()
    message = final.choices[0].message
    assert [a.model_dump() for a in message.annotations] == expected_annotations(
        prompt, DEFAULT.search
    )
    assert message.content.endswith(prompt)


def test_a_battle_answers_with_two_hidden_models_as_two_choices(
    each_site: tuple[Stack, Site],
) -> None:
    stack, _ = each_site
    prompt = unique("tell a joke")
    answer = stack.openai().chat.completions.create(
        model="battle", messages=[{"role": "user", "content": prompt}]
    )
    assert [c.index for c in answer.choices] == [0, 1] and answer.model == "battle"
    assert all(c.model_extra["model"] is None for c in answer.choices)
    texts = [c.message.content for c in answer.choices]
    assert all(t.startswith(f"Turn 1 of «{prompt}» (") and t.endswith(prompt) for t in texts), texts
    assert texts[0] != texts[1]  # two different models (the fake names its model in the text)
    (created,) = [
        r
        for r in stack.arena_log()["requests"]
        if r["path"].endswith("/create-evaluation")
        and r["status"] == 200
        and r["body"]["userMessage"]["content"] == prompt
    ]
    assert created["body"]["mode"] == "battle"
    # Two different models (the bridge's draw; since 2026 the site draws them itself).
    (streamed,) = stack.arena_streams(prompt)
    drawn = streamed["models"]
    assert drawn["a"] != drawn["b"]
    assert texts == [
        answer_text(Ask(model=drawn[side], kind="chat", turn=1, first=prompt, prompt=prompt))
        for side in "ab"
    ]


def test_side_by_side_streams_both_answers_as_choices_0_and_1_with_their_names(
    each_site: tuple[Stack, Site],
) -> None:
    stack, _ = each_site
    prompt = unique("compare notes")
    texts = {0: "", 1: ""}
    names: dict[int, str] = {}
    finishes: dict[int, str] = {}
    for chunk in stack.openai().chat.completions.create(
        model=f"side-by-side:{LEFT},{RIGHT}",
        messages=[{"role": "user", "content": prompt}],
        stream=True,
    ):
        for choice in chunk.choices:
            texts[choice.index] += choice.delta.content or ""
            if "model" in (choice.model_extra or {}):
                names[choice.index] = choice.model_extra["model"]
            if choice.finish_reason:
                finishes[choice.index] = choice.finish_reason
    assert names == {0: LEFT, 1: RIGHT} and finishes == {0: "stop", 1: "stop"}
    assert texts == {
        0: answer_text(Ask(model=LEFT, kind="chat", turn=1, first=prompt, prompt=prompt)),
        1: answer_text(Ask(model=RIGHT, kind="chat", turn=1, first=prompt, prompt=prompt)),
    }


def test_a_malformed_pair_is_a_400_and_an_unknown_model_in_it_a_404(stack: Stack) -> None:
    with pytest.raises(openai.BadRequestError):
        stack.openai().chat.completions.create(
            model="side-by-side:only-one", messages=[{"role": "user", "content": "x"}]
        )
    with pytest.raises(openai.NotFoundError):
        stack.openai().chat.completions.create(
            model=f"side-by-side:{LEFT},no-such-model", messages=[{"role": "user", "content": "x"}]
        )
