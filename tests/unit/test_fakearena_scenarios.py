"""Injected failures, the login gate, the Cloudflare interstitial, pacing and stopping."""

from __future__ import annotations

import itertools
import re
import time

import orjson
import pytest

from tests.fakearena.catalog import captured_models
from tests.fakearena.client import STREAM, ArenaClient, evaluation_body, lines_of
from tests.fakearena.replies import Ask, answer_text, lines, pieces, text_of

MODELS = {entry["publicName"]: entry["id"] for entry in captured_models()}
CHAT = MODELS["gemini-2.5-pro"]
PROMPT = "one two three four five six seven eight"
FULL = lines("a", Ask(model="gemini-2.5-pro", kind="chat", turn=1, first=PROMPT, prompt=PROMPT))


def last_stream(client: ArenaClient) -> dict:
    return client.log()["streams"][-1]


def test_rate_limit_429_on_the_next_create(client: ArenaClient) -> None:
    client.scenario(failures=[{"kind": "rate_limit_429", "endpoint": "create", "retry_after": 7}])
    _, response = client.create(CHAT, PROMPT, modality="chat")
    assert response.status_code == 429
    assert response.text == "Too many requests, please try again later."
    assert response.headers["content-type"] == "text/plain; charset=UTF-8"
    assert response.headers["retry-after"] == "7"
    assert response.headers["ratelimit"] == "limit=0, remaining=0, reset=7"
    assert response.headers["ratelimit-modality"] == "chat"
    assert client.create(CHAT, PROMPT)[1].status_code == 200  # times defaults to 1


@pytest.mark.parametrize(
    ("kind", "status", "error"),
    [
        ("recaptcha_403", 403, "recaptcha validation failed"),
        ("unauthorized_401", 401, "Unauthorized"),
        ("server_500", 500, "Internal Server Error"),
    ],
)
def test_status_failures(client: ArenaClient, kind: str, status: int, error: str) -> None:
    client.scenario(failures=[{"kind": kind}])
    _, response = client.create(CHAT, PROMPT)
    assert (response.status_code, response.json()) == (status, {"error": error})
    assert client.create(CHAT, PROMPT)[1].status_code == 200


def test_cut_stream_ends_without_finish(client: ArenaClient) -> None:
    client.scenario(failures=[{"kind": "cut_stream"}])
    _, response = client.create(CHAT, PROMPT)
    served = lines_of(response)
    assert response.status_code == 200
    assert served == FULL[: (len(FULL) - 1) // 2]
    assert not any(line.startswith("ad:") for line in served)
    assert last_stream(client)["status"] == "cut"


def test_error_line(client: ArenaClient) -> None:
    client.scenario(failures=[{"kind": "error_line", "message": "Model overloaded"}])
    _, response = client.create(CHAT, PROMPT)
    served = lines_of(response)
    assert served[-1] == 'a3:"Model overloaded"'
    assert served[:-1] == FULL[: (len(FULL) - 1) // 2]
    assert last_stream(client)["status"] == "error"


def test_empty_200(client: ArenaClient) -> None:
    client.scenario(failures=[{"kind": "empty_200"}])
    _, response = client.create(CHAT, PROMPT)
    assert (response.status_code, response.content) == (200, b"")
    assert response.headers["content-type"] == "text/event-stream"
    assert last_stream(client)["status"] == "empty"


def test_pause_after_the_first_line(client: ArenaClient) -> None:
    client.scenario(failures=[{"kind": "pause", "seconds": 0.6}])
    body = evaluation_body(model_id=CHAT, content=PROMPT, token=client.token())
    with client.http.stream("POST", f"{STREAM}/create-evaluation", json=body) as response:
        received = response.iter_lines()
        assert next(received) == FULL[0]
        started = time.monotonic()
        assert next(received) == FULL[1]
        silence = time.monotonic() - started
        assert list(received) == FULL[2:]
    assert silence >= 0.5
    assert last_stream(client)["status"] == "finished"


def test_failures_count_per_endpoint_with_after_and_times(client: ArenaClient) -> None:
    client.scenario(failures=[{"kind": "server_500", "endpoint": "post", "after": 1, "times": 2}])
    first, response = client.create(CHAT, "start")
    assert response.status_code == 200
    statuses = [client.post(first["id"], CHAT, f"turn {n}")[1].status_code for n in range(4)]
    assert statuses == [200, 500, 500, 200]


def test_a_failure_can_last_forever(client: ArenaClient) -> None:
    client.scenario(failures=[{"kind": "server_500", "endpoint": "any", "times": None}])
    assert {client.create(CHAT, "x")[1].status_code for _ in range(5)} == {500}


def test_retry_endpoint_filter(client: ArenaClient) -> None:
    client.scenario(failures=[{"kind": "rate_limit_429", "endpoint": "retry"}])
    body, response = client.create(CHAT, "x")
    assert response.status_code == 200
    retried = client.retry(body["id"], body["modelAMessageId"])
    assert (retried.status_code, retried.headers["ratelimit-modality"]) == (429, "chat")


def test_login_gate_refuses_guests_in_direct_mode(client: ArenaClient, origin: str) -> None:
    guest_session, _ = client.create(CHAT, "before the gate")
    client.scenario(login_gate=True)
    _, response = client.create(CHAT, "hi")
    assert response.status_code == 401 and "LOGIN_GATE" in response.text
    assert "LOGIN_GATE" in client.post(guest_session["id"], CHAT, "more")[1].text
    _, battle = client.create(CHAT, "hi", mode="battle", model_b_id=MODELS["grok-4.1"])
    assert battle.status_code == 200
    with ArenaClient(origin) as member:
        member.sign_in("carol")
        assert member.create(CHAT, "hi")[1].status_code == 200


def test_cloudflare_challenges_every_page_and_endpoint_until_cleared(
    client: ArenaClient, origin: str
) -> None:
    client.scenario(cloudflare=True)
    page = client.visit()
    assert page.status_code == 403
    assert page.headers["cf-mitigated"] == "challenge"
    assert "<title>Just a moment...</title>" in page.text and "_cf_chl_opt" in page.text
    assert client.create(CHAT, "hi")[1].status_code == 403
    assert client.http.get("/recaptcha/enterprise.js").status_code == 200  # Google, not the arena
    assert (
        client.http.post(
            "/cdn-cgi/challenge-platform/verify", json={"nonce": "made-up"}
        ).status_code
        == 403
    )
    nonce = re.search(r"cNounce:\"([^\"]+)\"", page.text).group(1)
    cleared = client.http.post("/cdn-cgi/challenge-platform/verify", json={"nonce": nonce})
    assert cleared.status_code == 200 and "cf_clearance" in client.http.cookies
    assert client.visit().status_code == 200
    assert client.create(CHAT, "hi")[1].status_code == 200
    with ArenaClient(origin) as other_browser:
        assert other_browser.visit().status_code == 403
    # turning the challenge on again catches everyone
    client.scenario(cloudflare=False)
    client.scenario(cloudflare=True)
    assert client.visit().status_code == 403
    client.scenario(cloudflare=False)
    assert client.visit().status_code == 200


def test_stop_ends_the_running_stream(client: ArenaClient) -> None:
    client.scenario(line_delay_seconds=0.05)
    body = evaluation_body(model_id=CHAT, content=PROMPT, token=client.token())
    with client.http.stream("POST", f"{STREAM}/create-evaluation", json=body) as response:
        received = response.iter_lines()
        assert next(received) == FULL[0]
        stopped = client.stop(body["id"], body["modelAMessageId"])
        rest = list(received)
    assert stopped.json() == {"success": True}
    assert len(rest) <= 1  # at most the line already in flight
    assert not any(line.startswith("ad:") for line in rest)
    record = last_stream(client)
    assert record["status"] == "stopped"
    assert record["lines"] == FULL[: len(record["lines"])]


def test_a_client_that_goes_away_ends_its_stream(client: ArenaClient) -> None:
    client.scenario(line_delay_seconds=0.05)
    body = evaluation_body(model_id=CHAT, content=PROMPT * 5, token=client.token())
    with client.http.stream("POST", f"{STREAM}/create-evaluation", json=body) as response:
        next(response.iter_lines())
    deadline = time.monotonic() + 5
    while last_stream(client)["status"] == "running" and time.monotonic() < deadline:
        time.sleep(0.05)
    record = last_stream(client)
    assert record["status"] == "disconnected"
    assert len(record["lines"]) < len(PROMPT.split()) * 5


def test_line_delay_paces_the_stream(client: ArenaClient) -> None:
    client.scenario(line_delay_seconds=0.04)
    started = time.monotonic()
    _, response = client.create(CHAT, PROMPT)
    elapsed = time.monotonic() - started
    assert lines_of(response) == FULL
    assert elapsed >= 0.04 * (len(FULL) - 1)
    sent = client.log()["streams"][-1]["sent_at"]
    assert len(sent) == len(FULL)
    assert all(later - earlier >= 0.035 for earlier, later in itertools.pairwise(sent))


def test_continuation_and_retry_replies(client: ArenaClient) -> None:
    first, _ = client.create(CHAT, "What is the capital of France?")
    _, second = client.post(first["id"], CHAT, "And of Spain?")
    retried = client.retry(first["id"], first["modelAMessageId"])
    again = client.retry(first["id"], first["modelAMessageId"])
    streams = client.log()["streams"]
    head = "of «What is the capital of France?» (gemini-2.5-pro): "
    assert [s["text"]["a"] for s in streams] == [
        f"Turn 1 {head}What is the capital of France?",
        f"Turn 2 {head}And of Spain?",
        f"Retry 1 of turn 1 {head}What is the capital of France?",
        f"Retry 2 of turn 1 {head}What is the capital of France?",
    ]
    assert [s["endpoint"] for s in streams] == ["create", "post", "retry", "retry"]
    assert retried.status_code == again.status_code == second.status_code == 200


def test_battle_answers_on_both_sides(client: ArenaClient) -> None:
    model_b = MODELS["claude-opus-4-5-20251101-thinking-32k"]
    body, response = client.create(CHAT, "compare", mode="side-by-side", model_b_id=model_b)
    served = lines_of(response)
    assert {line[0] for line in served} == {"a", "b"}
    record = last_stream(client)
    a = Ask(model="gemini-2.5-pro", kind="chat", turn=1, first="compare", prompt="compare")
    b = Ask(
        model="claude-opus-4-5-20251101-thinking-32k",
        kind="reasoning",
        turn=1,
        first="compare",
        prompt="compare",
    )
    assert record["text"] == {"a": answer_text(a), "b": answer_text(b)}
    assert record["message_ids"] == {"a": body["modelAMessageId"], "b": body["modelBMessageId"]}
    assert [line for line in served if line[0] == "a"] == lines("a", a)
    assert [line for line in served if line[0] == "b"] == lines("b", b)
    assert served[:2] == [lines("a", a)[0], lines("b", b)[0]]
    retried = client.retry(body["id"], body["modelBMessageId"])
    assert {line[0] for line in lines_of(retried)} == {"b"}


def test_a_stream_failure_waits_for_a_request_that_passes_every_check(client: ArenaClient) -> None:
    client.scenario(failures=[{"kind": "cut_stream", "endpoint": "create"}])
    _, refused = client.create(CHAT, PROMPT, token="03AFnot-a-token-minted-here")
    assert refused.status_code == 403
    _, cut = client.create(CHAT, PROMPT)
    assert cut.status_code == 200 and not lines_of(cut)[-1].startswith("ad:")
    _, whole = client.create(CHAT, PROMPT)
    assert lines_of(whole) == FULL


def test_scripted_replies_replace_the_answer_text(client: ArenaClient) -> None:
    call = 'I will look. <tool_call>{"name": "get_weather", "arguments": {"city": "Paris"}}</tool_call>'
    client.scenario(
        replies=[
            {"match": r"^TOOL RESULT\b", "text": "It is sunny in Paris.\n"},
            {"match": "(?i)weather", "text": call},
        ]
    )
    body, response = client.create(CHAT, "What is the weather in Paris?")
    assert lines_of(response) == [
        *(f"a0:{orjson.dumps(piece).decode()}" for piece in pieces(call)),
        'ad:{"finishReason":"stop"}',
    ]
    _, answered = client.post(body["id"], CHAT, "TOOL RESULT get_weather: sunny (weather ok)")
    assert text_of(lines_of(answered), "a") == "It is sunny in Paris.\n"  # the first match wins
    _, plain = client.post(body["id"], CHAT, "thanks")
    assert (
        text_of(lines_of(plain), "a")
        == "Turn 3 of «What is the weather in Paris?» (gemini-2.5-pro): thanks"
    )
    retried = client.retry(body["id"], body["modelAMessageId"])
    assert text_of(lines_of(retried), "a") == call


def test_a_scripted_reply_needs_a_valid_regex(client: ArenaClient) -> None:
    response = client.http.post("/__fake/scenario", json={"replies": [{"match": "(", "text": "x"}]})
    assert response.status_code == 400 and "bad regex" in response.text
