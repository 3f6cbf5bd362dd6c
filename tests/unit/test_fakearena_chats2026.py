"""Chats on the 2026 site: `direct-battle`, blind battles, ids per arena group, `chat_retry`."""

from __future__ import annotations

import httpx
import pytest

from shared.arena.ids import uuid7
from tests.fakearena.catalog import reported_groups
from tests.fakearena.client import STREAM, ArenaClient, evaluation_body, lines_of
from tests.fakearena.replies import Ask, Framing, answer_text, framed, lines

IDS = {
    (group["arena"], entry["publicName"]): entry["id"]
    for group in reported_groups()
    for entry in group["models"]
}
TEXT = IDS["text", "gemini-3.1-pro-preview"]
QWEN_TEXT, QWEN_CODE = IDS["text", "qwen3.7-plus"], IDS["code", "qwen3.7-plus"]
AGENT_TEXT = IDS["text", "grok-4.20-multi-agent-beta-0309"]
AGENT_SEARCH = IDS["search", "grok-4.20-multi-agent-beta-0309"]
MAX = IDS["text", "Max"]
VIDEO = next(g for g in reported_groups() if g["arena"] == "text-to-video")["models"][0]
TEXT_NAMES = {name for arena, name in IDS if arena == "text"}


@pytest.fixture
def new_site(client: ArenaClient) -> ArenaClient:
    client.scenario(site="2026-10")
    return client


def refused(response: httpx.Response, status: int, error: str) -> bool:
    return response.status_code == status and response.json() == {"error": error}


def test_direct_cannot_start_a_chat(new_site: ArenaClient) -> None:
    _, response = new_site.create(TEXT, "hi", mode="direct")
    assert refused(response, 400, "'direct' mode is not allowed when starting a new conversation")


def test_direct_battle_answers_with_model_a_alone(new_site: ArenaClient) -> None:
    body, response = new_site.create(TEXT, "hello there", mode="direct-battle")
    ask = Ask(
        model="gemini-3.1-pro-preview",
        kind="chat",
        turn=1,
        first="hello there",
        prompt="hello there",
    )
    assert "modelBMessageId" not in body and "modelBId" not in body
    assert lines_of(response) == lines("a", ask)
    _, followed = new_site.post(body["id"], TEXT, "and then?")
    assert followed.status_code == 200
    second = Ask(
        model="gemini-3.1-pro-preview", kind="chat", turn=2, first="hello there", prompt="and then?"
    )
    assert new_site.log()["streams"][-1]["text"] == {"a": answer_text(second)}
    session = new_site.log()["sessions"][-1]
    assert session["mode"] == "direct-battle" and len(session["turns"]) == 2


def test_direct_battle_takes_no_model_b_fields(new_site: ArenaClient) -> None:
    _, response = new_site.create(TEXT, "hi", mode="direct-battle", model_b_id=QWEN_TEXT)
    assert refused(response, 400, "Unexpected field in direct-battle: modelBId")
    body = evaluation_body(
        model_id=TEXT, content="hi", token=new_site.token(), mode="direct-battle"
    )
    body["modelBMessageId"] = uuid7()
    response = new_site.send("POST", f"{STREAM}/create-evaluation", body)
    assert refused(response, 400, "Unexpected field in direct-battle: modelBMessageId")


def test_a_blind_battle_draws_two_text_models_and_keeps_them(new_site: ArenaClient) -> None:
    body, response = new_site.create(None, "pick for me", mode="battle", blind=True)
    assert "modelAId" not in body and "modelBId" not in body
    served = lines_of(response)
    assert {line[0] for line in served} == {"a", "b"}
    first = new_site.log()["streams"][-1]
    models = first["models"]
    assert models["a"] != models["b"] and {models["a"], models["b"]} <= TEXT_NAMES
    for side in ("a", "b"):
        assert first["text"][side] == f"Turn 1 of «pick for me» ({models[side]}): pick for me"
    _, again = new_site.post(body["id"], None, "once more", blind=True)
    assert again.status_code == 200
    assert new_site.log()["streams"][-1]["models"] == models


def test_side_by_side_as_before(new_site: ArenaClient) -> None:
    body, response = new_site.create(TEXT, "compare", mode="side-by-side", model_b_id=QWEN_TEXT)
    assert response.status_code == 200
    assert new_site.log()["streams"][-1]["models"] == {
        "a": "gemini-3.1-pro-preview",
        "b": "qwen3.7-plus",
    }
    assert body["modelBMessageId"] in new_site.log()["streams"][-1]["message_ids"].values()


def test_an_id_serves_only_its_groups_modality(new_site: ArenaClient) -> None:
    assert new_site.create(QWEN_CODE, "code it", mode="direct-battle")[1].status_code == 200
    assert new_site.log()["streams"][-1]["models"] == {"a": "qwen3.7-plus"}
    _, response = new_site.create(AGENT_TEXT, "find it", mode="direct-battle", modality="search")
    assert refused(
        response, 400, "Model grok-4.20-multi-agent-beta-0309 does not support modality search"
    )
    _, response = new_site.create(AGENT_SEARCH, "find it", mode="direct-battle", modality="chat")
    assert refused(
        response, 400, "Model grok-4.20-multi-agent-beta-0309 does not support modality chat"
    )
    _, searched = new_site.create(AGENT_SEARCH, "find it", mode="direct-battle", modality="search")
    assert searched.status_code == 200
    assert lines_of(searched)[-1] == 'ad:{"finishReason":"unknown"}'  # a search answer
    assert any(line.startswith("ac:") for line in lines_of(searched))


@pytest.mark.parametrize(
    ("modality", "first_code"), [("chat", "a0"), ("search", "a0"), ("image", "a2")]
)
def test_one_id_in_several_groups_serves_each_modality(
    new_site: ArenaClient, modality: str, first_code: str
) -> None:
    _, response = new_site.create(MAX, "all of it", mode="direct-battle", modality=modality)
    assert response.status_code == 200
    assert lines_of(response)[0].startswith(f"{first_code}:")


def test_video_ids_are_never_served(new_site: ArenaClient) -> None:
    _, response = new_site.create(VIDEO["id"], "a film", mode="direct-battle", modality="video")
    assert refused(response, 400, "Unsupported modality: video")
    _, response = new_site.create(VIDEO["id"], "a film", mode="direct-battle")
    assert refused(response, 400, f"Model {VIDEO['publicName']} does not support modality chat")


def test_a_retry_needs_a_chat_retry_token(new_site: ArenaClient) -> None:
    body, _ = new_site.create(TEXT, "again", mode="direct-battle")
    message = body["modelAMessageId"]
    submit = new_site.retry(body["id"], message, action="chat_submit")
    assert refused(submit, 403, "recaptcha validation failed")
    retried = new_site.retry(body["id"], message, action="chat_retry")
    assert retried.status_code == 200
    assert new_site.log()["streams"][-1]["text"]["a"].startswith("Retry 1 of turn 1")


def test_the_captured_site_keeps_its_modes_and_retry_token(client: ArenaClient) -> None:
    _, response = client.create(TEXT, "hi", mode="direct-battle")
    assert refused(response, 400, "Invalid mode: direct-battle")
    chat = "0199f060-b306-7e1f-aeae-0ebb4e3f1122"
    body, _ = client.create(chat, "hi")
    assert client.retry(body["id"], body["modelAMessageId"], action="chat_retry").status_code == 403
    assert client.retry(body["id"], body["modelAMessageId"]).status_code == 200


def test_the_login_gate_keeps_guests_out_of_direct_battle(new_site: ArenaClient) -> None:
    new_site.scenario(login_gate=True)
    _, response = new_site.create(TEXT, "hi", mode="direct-battle")
    assert response.status_code == 401 and response.json()["error"] == "LOGIN_GATE"
    assert new_site.create(None, "hi", mode="battle", blind=True)[1].status_code == 200
    new_site.sign_in("frank")
    assert new_site.create(TEXT, "hi", mode="direct-battle")[1].status_code == 200


def test_answers_can_carry_step_lines_and_heartbeats(new_site: ArenaClient) -> None:
    new_site.scenario(step_lines=True, heartbeat_lines=2)
    body, response = new_site.create(TEXT, "beat", mode="side-by-side", model_b_id=QWEN_TEXT)
    served = lines_of(response)
    for side, name in (("a", "gemini-3.1-pro-preview"), ("b", "qwen3.7-plus")):
        own = [line for line in served if line[0] == side]
        ask = Ask(model=name, kind="chat", turn=1, first="beat", prompt="beat")
        framing = Framing(body[f"model{side.upper()}MessageId"], step_lines=True, heartbeats=2)
        assert own == framed(side, lines(side, ask), "beat", framing)
        assert own[0] == f'{side}f:{{"messageId":"{body[f"model{side.upper()}MessageId"]}"}}'
        assert own[1:3] == [f'{side}2:[{{"type":"heartbeat"}}]'] * 2
        assert own[-2].startswith(f'{side}e:{{"finishReason":"stop","usage":{{"promptTokens":1,')
    assert (
        new_site.log()["streams"][-1]["text"]["a"]
        == "Turn 1 of «beat» (gemini-3.1-pro-preview): beat"
    )
