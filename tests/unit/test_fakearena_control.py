"""Pages, the reCAPTCHA stand-in's endpoints and the control API (log, scenario, reset, --scenario)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import orjson
import pytest

from tests.fakearena.catalog import captured_models
from tests.fakearena.client import ArenaClient, evaluation_body, lines_of
from tests.fakearena.replies import text_of
from tests.fakearena.state import SITE_KEY
from tests.support.procs import fake_arena

MODELS = {entry["publicName"]: entry["id"] for entry in captured_models()}
CHAT = MODELS["gemini-2.5-pro"]
THINKING = MODELS["deepseek-v3.2-exp-thinking"]
PUSH = re.compile(r'self\.__next_f\.push\(\[1,("(?:[^"\\]|\\.)*")\]\)')


@pytest.mark.parametrize("path", ["/", "/?mode=direct", "/?mode=direct&chat-modality=image"])
def test_chat_pages(client: ArenaClient, path: str) -> None:
    page = client.visit(path)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert f'<script src="/recaptcha/enterprise.js?render={SITE_KEY}" async></script>' in html
    assert '<textarea name="message"' in html and '<button id="send"' in html
    assert 'data-testid="login"' in html  # a guest
    assert "(self.__next_f=self.__next_f||[]).push([0])" in html


def test_a_first_visit_gets_a_guest_id_once(origin: str) -> None:
    with ArenaClient(origin) as browser:
        first = browser.visit()
        guest = browser.http.cookies["provisional_user_id"]
        assert "provisional_user_id=" in first.headers["set-cookie"]
        assert "set-cookie" not in browser.visit().headers
        assert browser.http.cookies["provisional_user_id"] == guest


def test_session_page_shows_only_your_own_thread(client: ArenaClient, origin: str) -> None:
    body, _ = client.create(CHAT, "my private question")
    assert "my private question" in client.visit(f"/c/{body['id']}").text
    with ArenaClient(origin) as other:
        other.visit()
        page = other.visit(f"/c/{body['id']}?foo=1")
        assert page.status_code == 200 and "my private question" not in page.text


def test_rsc_can_be_split_across_pushes(client: ArenaClient) -> None:
    whole = "".join(orjson.loads(s) for s in PUSH.findall(client.visit().text))
    client.scenario(rsc_chunk_chars=500)
    pushes = PUSH.findall(client.visit().text)
    assert len(pushes) > 100
    assert "".join(orjson.loads(s) for s in pushes) == whole


def test_recaptcha_script_and_reload(client: ArenaClient) -> None:
    script = client.http.get(f"/recaptcha/enterprise.js?render={SITE_KEY}")
    assert script.headers["content-type"].startswith("application/javascript")
    assert "grecaptcha" in script.text and "enterprise" in script.text
    wrong = client.http.post("/recaptcha/enterprise/reload?k=nope", json={"action": "chat_submit"})
    assert wrong.status_code == 400
    client.scenario(recaptcha_mint_seconds=0.3)
    started = time.monotonic()
    token = client.http.post(
        f"/recaptcha/enterprise/reload?k={SITE_KEY}", json={"action": "chat_submit"}
    ).json()["token"]
    assert time.monotonic() - started >= 0.3
    assert client.create(CHAT, "hi", token=token)[1].status_code == 200


def test_control_token_mints_without_delay(client: ArenaClient) -> None:
    client.scenario(recaptcha_mint_seconds=5)
    started = time.monotonic()
    token = client.token()
    assert time.monotonic() - started < 2
    assert token.startswith("03AF")
    assert client.create(CHAT, "hi", token=token)[1].status_code == 200


def test_scenario_merges_keys_and_refuses_bad_ones(client: ArenaClient) -> None:
    client.scenario(line_delay_seconds=0.01)
    merged = client.scenario(login_gate=True)
    assert merged["line_delay_seconds"] == 0.01 and merged["login_gate"] is True
    assert client.http.get("/__fake/scenario").json() == merged
    assert client.http.post("/__fake/scenario", json={"no_such_knob": 1}).status_code == 400
    assert client.http.post("/__fake/scenario", json={"line_delay_seconds": -1}).status_code == 400
    assert (
        client.http.post("/__fake/scenario", json={"failures": [{"kind": "meteor"}]}).status_code
        == 400
    )
    assert client.http.post("/__fake/scenario", content=b"[]").status_code == 400


def test_reset_forgets_everything_and_restores_the_scenario(client: ArenaClient) -> None:
    client.scenario(login_gate=True, line_delay_seconds=0.01)
    client.sign_in("dave")
    body, _ = client.create(CHAT, "remember me")
    client.reset()
    assert client.log() == {"requests": [], "streams": [], "sessions": []}
    assert client.http.get("/__fake/scenario").json()["login_gate"] is False
    assert client.post(body["id"], CHAT, "still there?")[1].status_code == 404


def test_log_records_requests_and_streams(client: ArenaClient) -> None:
    before = time.time()
    body, response = client.create(THINKING, "why is the sky blue")
    log = client.log()
    request = log["requests"][-1]
    received_at = request.pop("received_at")
    assert request.pop("peer")["host"] == "127.0.0.1"
    assert before <= received_at <= log["streams"][0]["sent_at"][0]
    assert request == {
        "method": "POST",
        "path": "/nextjs-api/stream/create-evaluation",
        "query": "",
        "body": body,
        "body_bytes": len(orjson.dumps(body)),
        "content_type": "text/plain;charset=UTF-8",
        "next_action": None,
        "cookies": ["provisional_user_id"],
        "identity": f"guest:{client.http.cookies['provisional_user_id']}",
        "status": 200,
    }
    assert not any(r["path"].startswith("/__fake/") for r in log["requests"])
    (stream,) = log["streams"]
    received = lines_of(response)
    assert stream["lines"] == received and stream["status"] == "finished"
    assert stream["text"]["a"] == text_of(received, "a")
    assert stream["reasoning"]["a"] == text_of(received, "a", "g") != ""
    assert stream["models"] == {"a": "deepseek-v3.2-exp-thinking"}
    assert stream["message_ids"] == {"a": body["modelAMessageId"]}
    assert stream["user_message_id"] == body["userMessageId"]
    (session,) = log["sessions"]
    assert session["id"] == body["id"] and session["mode"] == "direct"
    assert session["turns"][0]["text"] == "why is the sky blue"
    assert session["turns"][0]["models"] == {"a": THINKING}


def test_scenario_file_at_start_and_reset_returns_to_it(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    path.write_bytes(
        orjson.dumps({"login_gate": True, "failures": [{"kind": "server_500", "times": None}]})
    )
    with fake_arena(tmp_path, "--scenario", str(path)) as origin, ArenaClient(origin) as client:
        client.visit()
        assert client.create(CHAT, "hi")[1].status_code == 500
        client.scenario(failures=[])
        assert "LOGIN_GATE" in client.create(CHAT, "hi")[1].text
        client.scenario(login_gate=False)
        client.reset()
        assert client.http.get("/__fake/scenario").json()["login_gate"] is True


def test_the_log_and_the_peer_endpoint_name_the_tcp_peer(client: ArenaClient, origin: str) -> None:
    forged = {"x-forwarded-for": "203.0.113.9", "forwarded": "for=203.0.113.9"}
    transport = httpx.HTTPTransport(local_address="127.0.0.2")
    with httpx.Client(base_url=origin, transport=transport, headers=forged) as far:
        far.get("/")
        token = far.post("/__fake/recaptcha-token", json={}).json()["token"]
        body = evaluation_body(model_id=CHAT, content="from afar", token=token)
        assert far.post("/nextjs-api/stream/create-evaluation", json=body).status_code == 200
        seen = far.get("/__fake/peer").json()
    assert seen["host"] == "127.0.0.2" and isinstance(seen["port"], int)
    assert client.http.get("/__fake/peer").json()["host"] == "127.0.0.1"
    request = client.log()["requests"][-1]
    assert request["path"] == "/nextjs-api/stream/create-evaluation"
    assert request["peer"]["host"] == "127.0.0.2"
