from __future__ import annotations

import json
from typing import Any

import pytest

from shared.arena.catalog import (
    Model,
    from_groups,
    from_page,
    initial_models,
    rsc_text_from_html,
)
from tests.unit.test_arena_captures import capture, capture_text

MARKER = '"initialModels":'
TRUNCATION = "\n...(truncated)"


def _catalog() -> list[dict[str, Any]]:
    return capture("model-catalog-2025-12-01")["initialModels"]


def _compact(value: Any) -> str:
    # How the site serializes the RSC payload (JSON.stringify: no spaces, raw unicode).
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _rsc_line() -> str:
    """The captured RSC line, completed with the full catalog where the capture was cut off."""
    captured = capture_text("rsc-line-with-initialModels.txt")
    head, _, cut_array = captured.partition(MARKER)
    cut_array = cut_array.removesuffix("\n").removesuffix(TRUNCATION)
    full_array = _compact(_catalog())
    # The capture is byte for byte the start of the JSON capture's catalog.
    assert len(cut_array) > 2000
    assert full_array.startswith(cut_array)
    return (
        head
        + MARKER
        + full_array
        + ',"initialModelAId":"019a98f7-afcd-779f-8dcb-856cc3b3f078"}]}]\n'
    )


def _html_escape(text: str) -> str:
    # What Next.js does to the strings it inlines in <script>: JSON plus \u escapes.
    literal = json.dumps(text, ensure_ascii=False)
    for raw, escaped in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        literal = literal.replace(raw, escaped)
    return literal


def _html(rsc: str, cuts: list[int]) -> str:
    pieces = [rsc[start:end] for start, end in zip([0, *cuts], [*cuts, len(rsc)], strict=True)]
    scripts = ["<script>(self.__next_f=self.__next_f||[]).push([0])</script>"]
    scripts.append(
        f"<script>(self.__next_f=self.__next_f||[]).push([1,{_html_escape(pieces[0])}])</script>"
    )
    scripts += [
        f"<script>self.__next_f.push([1,{_html_escape(piece)}])</script>" for piece in pieces[1:]
    ]
    scripts.insert(2, "<script>self.__next_f.push([2,null])</script>")
    return (
        '<!DOCTYPE html><html><head><title>LMArena</title></head><body><div id="root"></div>'
        + "".join(scripts)
        + "</body></html>"
    )


def test_captured_rsc_line_gives_the_captured_catalog() -> None:
    models = initial_models(_rsc_line())
    assert len(models) == 288
    assert models == _catalog()


def test_html_with_escaped_push_strings_gives_the_same_catalog() -> None:
    rsc = '0:["$","html",null,{"lang":"en"}]\n' + _rsc_line() + '7:"<b>&amp; \u2028"\n'
    marker_at = rsc.index(MARKER)
    # Cut the payload inside the marker and inside the array, as Next.js flushes it.
    html = _html(rsc, [10, marker_at + 5, marker_at + 4000, marker_at + 50_000])
    assert MARKER not in html  # the page holds it only escaped, and cut in two
    assert rsc_text_from_html(html) == rsc
    assert initial_models(html) == _catalog()


def test_push_strings_are_concatenated_in_page_order() -> None:
    html = (
        'self.__next_f.push([1,"a\\"b"]) junk '
        '(self.__next_f = self.__next_f || []).push( [ 1 , "\\u003cc\\n" ] )'
        ' self.__next_f.push([3,"QUJD"]) self.__next_f.push([1,"d"])'
    )
    assert rsc_text_from_html(html) == 'a"b<c\nd'
    assert rsc_text_from_html("<html>no payload</html>") == ""


def test_pretty_printed_json_capture_reads_as_raw_text() -> None:
    assert initial_models(capture_text("model-catalog-2025-12-01.json")) == _catalog()


def test_raw_text_with_whitespace_after_the_key() -> None:
    text = 'x {"initialModels": \n [{"id":"1","publicName":"m"}], "initialModelAId":"1"}'
    assert initial_models(text) == [{"id": "1", "publicName": "m"}]


@pytest.mark.parametrize(
    "text",
    [
        "<html></html>",
        '{"initialModelAId":"x"}',
        '{"initialModels":"$1a"}',
        '{"initialModels":[{"id"',
    ],
)
def test_no_catalog_is_a_value_error(text: str) -> None:
    with pytest.raises(ValueError):
        initial_models(text)


def test_a_reference_before_the_inline_array_is_skipped() -> None:
    text = '5:{"initialModels":"$6"}\n6:{"initialModels":[{"id":"x","publicName":"y"}]}'
    assert initial_models(text) == [{"id": "x", "publicName": "y"}]


def _model(name: str) -> Model:
    (model,) = [model for model in from_page(_catalog()) if model.public_name == name]
    return model


def _one(entry: dict[str, Any]) -> Model | None:
    models = from_page([entry])
    return models[0] if models else None


def test_models_from_the_captured_catalog() -> None:
    assert _model("gemini-3-pro") == Model(
        public_name="gemini-3-pro",
        kind="chat",
        ids={"chat": "019a98f7-afcd-779f-8dcb-856cc3b3f078"},
        organization="google",
        accepts_images=True,
        rank=1,
    )
    assert _model("gemini-3-pro").id == "019a98f7-afcd-779f-8dcb-856cc3b3f078"
    grok = _model("grok-4.1-thinking")
    assert (grok.kind, grok.reasoning, grok.accepts_images, grok.rank) == (
        "reasoning",
        True,
        False,
        2,
    )
    stealth = _model("gemini-2.5-pro-grounding-exp")
    assert stealth.anonymous and stealth.organization is None
    assert not _model("gemini-3-pro").anonymous


@pytest.mark.parametrize(
    ("name", "modality", "accepts_images", "rank"),
    [
        ("gemini-3-pro-image-preview (nano-banana-pro)", "image", True, 1),  # image board
        ("grok-4-fast-search", "search", False, 1),  # rank from its own board
        ("gpt-5.1-search", "search", False, None),  # MAX_SAFE_INTEGER: unranked
        ("gpt-5.1-high", "chat", True, 5),
        ("deepseek-v3.2-exp-thinking", "chat", False, 26),
    ],
)
def test_modality_images_and_rank(
    name: str, modality: str, accepts_images: bool, rank: int | None
) -> None:
    model = _model(name)
    assert (model.modality, model.accepts_images, model.rank) == (modality, accepts_images, rank)


def test_reasoning_is_read_off_the_name() -> None:
    reasoning = {model.public_name for model in from_page(_catalog()) if model.reasoning}
    assert "claude-opus-4-5-20251101-thinking-32k" in reasoning
    assert "qwen3-max-thinking" in reasoning
    assert "qwen3-235b-a22b-no-thinking" not in reasoning
    assert "gemini-2.5-flash-lite-preview-09-2025-no-thinking" not in reasoning
    assert "gemini-3-pro" not in reasoning
    assert len(reasoning) == 16


def _entry(inputs: dict[str, Any], outputs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    capabilities = {"inputCapabilities": inputs, "outputCapabilities": outputs}
    return {"id": "i", "publicName": "n", "capabilities": capabilities, **extra}


@pytest.mark.parametrize(
    ("image_input", "expected"),
    [(True, True), ({"requiresUpload": True}, True), ({}, True), (False, False), (None, False)],
)
def test_image_input_forms(image_input: Any, expected: bool) -> None:
    inputs = {"text": True} if image_input is None else {"text": True, "image": image_input}
    model = _one(_entry(inputs, {"text": True}))
    assert model is not None and model.accepts_images is expected


@pytest.mark.parametrize(
    ("outputs", "modality"),
    [
        ({"video": True}, None),  # not served
        ({"video": True, "text": True}, "chat"),
        ({"image": {"aspectRatios": ["1:1"]}, "text": True}, "image"),
        ({"search": True, "text": True}, "search"),
        ({"web": True}, "chat"),
        ({}, "chat"),
    ],
)
def test_modality_rules(outputs: dict[str, Any], modality: str | None) -> None:
    model = _one(_entry({"text": True}, outputs))
    assert (model.modality if model else None) == modality


def test_entry_without_capabilities_or_organization_is_a_plain_anonymous_chat_model() -> None:
    model = _one({"id": "i", "publicName": "n", "organization": ""})
    assert model is not None
    assert (model.modality, model.accepts_images, model.anonymous, model.rank) == (
        "chat",
        False,
        True,
        None,
    )


@pytest.mark.parametrize(
    "entry",
    [{}, {"id": "i"}, {"publicName": "n"}, {"id": 1, "publicName": "n"}, "not an entry"],
)
def test_entry_without_id_or_name_is_left_out(entry: Any) -> None:
    assert from_page([entry]) == []


def test_the_page_catalog_drops_video_and_broken_entries() -> None:
    catalog = _catalog()
    models = from_page([*catalog, {"publicName": "no id"}])
    video = [e for e in catalog if from_page([e]) == []]
    # 42 video entries under 34 names (some names are there twice): one model per name.
    assert len(video) == 42
    assert len(models) == len({e["publicName"] for e in catalog if e not in video}) == 246
    assert {model.modality for model in models} == {"chat", "search", "image"}
    assert len({model.id for model in models}) == len(models)
    assert sum(model.anonymous for model in models) == sum(
        "organization" not in entry
        for entry in catalog
        if "video" not in entry["capabilities"]["outputCapabilities"]
    )


# The catalog endpoint (2026): arena groups.


def _groups() -> list[dict[str, Any]]:
    return json.loads(capture_text("model-catalog-2026-10-06.json"))


def _named(models: list[Model]) -> dict[str, Model]:
    return {model.public_name: model for model in models}


def _ids(groups: list[dict[str, Any]], name: str) -> dict[str, str]:
    """The id a public name carries in each group of the snapshot (its first entry there)."""
    found: dict[str, str] = {}
    for group in groups:
        for entry in group["models"]:
            if entry["publicName"] == name:
                found.setdefault(group["arena"], entry["id"])
    return found


def test_the_endpoint_catalog_has_one_model_per_name_and_no_video() -> None:
    groups = _groups()
    models = from_groups(groups)
    names = {e["publicName"] for g in groups if g["arena"] != "text-to-video" for e in g["models"]}
    assert sorted(m.public_name for m in models) == sorted(names)
    assert {m.kind for m in models} == {"chat", "reasoning", "code", "search", "image"}
    # In the catalog's order: the first group's models first.
    assert models[0].public_name == groups[0]["models"][0]["publicName"]


def test_a_model_takes_its_kind_from_its_first_group_and_an_id_per_modality() -> None:
    groups = _groups()
    models = _named(from_groups(groups))
    # In text and search, under another id in each: a chat model that can also search.
    both = _ids(groups, "grok-4.3")
    grok = models["grok-4.3"]
    assert (grok.kind, grok.modality) == ("chat", "chat")
    assert grok.ids == {"chat": both["text"], "search": both["search"]} and grok.id == both["text"]
    # A text id differing from its code id: the text group's is sent.
    qwen = models["qwen3-max-thinking"]
    assert qwen.kind == "reasoning" and qwen.id == _ids(groups, "qwen3-max-thinking")["text"]
    assert qwen.id != _ids(groups, "qwen3-max-thinking")["code"]
    # Only in code: a code model, asked in the chat modality.
    code_only = next(name for name, model in models.items() if set(_ids(groups, name)) == {"code"})
    assert (models[code_only].kind, models[code_only].modality) == ("code", "chat")
    assert (models["claude-sonnet-4-6-search"].kind, models["seedream-5.0-pro"].kind) == (
        "search",
        "image",
    )
    assert models["seedream-5.0-pro"].accepts_images and models["seedream-5.0-pro"].rank == 10


def test_unselectable_entries_and_unknown_shapes_are_left_out() -> None:
    entry = {"id": "a", "publicName": "m", "capabilities": {}}
    groups = [
        {"arena": "text", "models": [{**entry, "userSelectable": False}]},
        {"arena": "search", "models": [{**entry, "id": "b"}]},
        {"arena": "text", "models": "not a list"},
        {"models": [entry]},
        "not a group",
    ]
    assert _named(from_groups(groups))["m"].ids == {"search": "b"}
    assert from_groups([{"arena": "text", "models": [{**entry, "userSelectable": False}]}]) == []


def test_a_group_the_bridge_does_not_know_goes_by_capabilities() -> None:
    entry = _entry({"text": True}, {"image": {"aspectRatios": ["1:1"]}})
    (model,) = from_groups([{"arena": "text-to-something", "models": [entry]}])
    assert (model.kind, model.ids) == ("image", {"image": "i"})


def test_a_model_is_published_and_read_back_whole() -> None:
    for model in from_groups(_groups())[:20] + from_page(_catalog())[:20]:
        assert Model.from_published(json.loads(json.dumps(model.published()))) == model
