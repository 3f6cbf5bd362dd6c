"""The bridge against either version of the arena, found out at run time: where the catalog
comes from, the mode new chats take, the token a regenerate takes, and deleting chats the
bridge has forgotten (LMB_DELETE_CHATS).

Real processes throughout: redis-server, the fake arena (one per site), `lmarena-bridge gateway`
and `lmarena-bridge worker` (headless Chromium), the openai SDK as the client. The captured
site's stack is the session's (`captured`): other modules may have taught its worker already.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import httpx
import orjson
import pytest

from shared.arena.site import CREATE_PATH, STREAM_PREFIX
from tests.fakearena.catalog import CAPTURED_CATALOG, REPORTED_CATALOG
from tests.fakearena.scenario import CAPTURED_SITE, NEW_SITE
from tests.support.sites import MODELS
from tests.support.stack import Stack, running, unique, wait_until

pytestmark = pytest.mark.browser

#: How long the deleting stack remembers a conversation: short, so that a test sees it go.
TTL_S = 4
CHAT = "gemini-2.5-pro"  # on either site


@pytest.fixture(scope="module")
def today(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """One worker against today's arena, deleting chats a few seconds after their last turn."""
    with running(
        tmp_path_factory.mktemp("site-today"),
        "new-1",
        site=NEW_SITE,
        LMB_ADMIN_KEY=secrets.token_hex(16),
        LMB_DELETE_CHATS="true",
        LMB_CONVERSATION_TTL_SECONDS=str(TTL_S),
    ) as stack:
        yield stack


def ask(stack: Stack, messages: list[dict], model: str = CHAT) -> str:
    answer = stack.openai().chat.completions.create(model=model, messages=messages)
    return answer.choices[0].message.content or ""


def since(stack: Stack) -> int:
    return len(stack.arena_log()["requests"])


def streamed(stack: Stack, start: int, endpoint: str) -> list[dict]:
    """The requests to one stream endpoint since `start`, in order."""
    path = STREAM_PREFIX + endpoint
    return [r for r in stack.arena_log()["requests"][start:] if r["path"].startswith(path)]


def workers(stack: Stack) -> dict[str, dict]:
    headers = {"Authorization": f"Bearer {stack.env['LMB_ADMIN_KEY']}"}
    fleet = httpx.get(f"{stack.base_url}/admin/api/workers", headers=headers, timeout=10).json()
    return {row["id"]: row for row in fleet["workers"]}


def test_the_catalog_comes_from_the_endpoint_today_and_from_the_page_before(
    captured: Stack, today: Stack
) -> None:
    assert today.worker_status("new-1").catalog_source == "endpoint"
    assert captured.worker_status("captured-1").catalog_source == "page"
    assert workers(today)["new-1"]["catalog_source"] == "endpoint"
    assert workers(captured)["captured-1"]["catalog_source"] == "page"
    listed = {model.id for model in today.openai().models.list()}
    groups = orjson.loads(REPORTED_CATALOG.read_bytes())
    video_only = {e["publicName"] for g in groups for e in g["models"]} - {
        e["publicName"] for g in groups if g["arena"] != "text-to-video" for e in g["models"]
    }
    assert video_only and not listed & video_only and MODELS[NEW_SITE].reasoning in listed


def test_each_request_sends_the_id_of_its_own_modality(today: Stack) -> None:
    groups = orjson.loads(REPORTED_CATALOG.read_bytes())
    ids = {
        (group["arena"], entry["publicName"]): entry["id"]
        for group in reversed(groups)
        for entry in reversed(group["models"])  # the first entry of a name in a group wins
    }
    models = MODELS[NEW_SITE]
    start = since(today)
    for model in (models.reasoning, models.search, models.image):
        ask(today, [{"role": "user", "content": unique("which id")}], model=model)
    sent = [
        (r["body"]["modality"], r["body"]["modelAId"]) for r in streamed(today, start, "create")
    ]
    assert sent == [
        ("chat", ids["text", models.reasoning]),  # not its `code` id
        ("search", ids["search", models.search]),
        ("image", ids["text-to-image", models.image]),
    ]
    assert ids["text", models.reasoning] != ids["code", models.reasoning]


def test_new_chats_follow_the_mode_the_site_takes_both_ways_without_a_failed_request(
    captured: Stack,
) -> None:
    def creates(start: int) -> list[tuple[int, str]]:
        return [(r["status"], r["body"]["mode"]) for r in streamed(captured, start, "create")]

    def chat_twice() -> list[tuple[int, str]]:
        start = since(captured)
        for turn in ("first", "second"):
            prompt = unique(turn)
            assert ask(captured, [{"role": "user", "content": prompt}]).endswith(prompt)
        return creates(start)

    (entry,) = [
        e
        for e in orjson.loads(CAPTURED_CATALOG.read_bytes())["initialModels"]
        if e["publicName"] == CHAT
    ]
    # Today's site with the same model ids (what the worker has in its catalog).
    today_site = {"site": NEW_SITE, "catalog": [{"arena": "text", "models": [entry]}]}
    captured_site = {"site": CAPTURED_SITE, "catalog": None}
    try:
        # The captured site knows no `direct-battle`: a worker that has not learnt it yet
        # meets one refusal, then takes `direct` first.
        assert chat_twice()[-2:] == [(200, "direct"), (200, "direct")]
        wait_until(lambda: workers(captured)["captured-1"]["chat_mode"] == "direct", 5, "direct")

        captured.arena("POST", "scenario", json=today_site)  # `direct` is refused on create
        assert chat_twice() == [(400, "direct"), (200, "direct-battle"), (200, "direct-battle")]
        wait_until(lambda: workers(captured)["captured-1"]["chat_mode"] == "direct-battle", 5, "db")

        captured.arena("POST", "scenario", json=captured_site)  # and back again
        assert chat_twice() == [(400, "direct-battle"), (200, "direct"), (200, "direct")]
    finally:  # a reset would also void the tokens minted ahead
        captured.arena("POST", "scenario", json=captured_site)


def test_a_regenerate_takes_a_chat_retry_token_today_and_learns_what_the_captured_site_takes(
    captured: Stack, today: Stack
) -> None:
    def regenerate_twice(stack: Stack) -> list[int]:
        history = [{"role": "user", "content": unique("Pick a number")}]
        ask(stack, history)
        start = since(stack)
        ask(stack, history)
        ask(stack, history)
        return [r["status"] for r in streamed(stack, start, "retry-evaluation-session-message")]

    # Today's site takes a retry only with a `chat_retry` token: the first one passes.
    assert regenerate_twice(today) == [200, 200]
    # The captured site wants `chat_submit`: refused once (unless the worker has learnt it in
    # another module's regenerate), then the worker knows.
    assert regenerate_twice(captured)[-2:] == [200, 200]
    assert regenerate_twice(captured) == [200, 200]


def test_a_chat_is_deleted_once_the_bridge_forgot_it_and_never_while_it_goes_on(
    today: Stack,
) -> None:
    first = unique("Tell me about herons")
    history = [{"role": "user", "content": first}]
    history += [{"role": "assistant", "content": ask(today, history)}]
    # The next turn takes longer than the TTL: the chat stays while the answer runs.
    today.arena("POST", "scenario", json={"line_delay_seconds": TTL_S / 8})
    try:
        history += [{"role": "user", "content": unique("Where do they live?")}]
        history += [{"role": "assistant", "content": ask(today, history)}]
    finally:
        today.arena("POST", "scenario", json={"line_delay_seconds": 0})
    battle = unique("a battle is never continued")
    today.openai().chat.completions.create(
        model="battle", messages=[{"role": "user", "content": battle}]
    )

    def session_of(prompt: str) -> dict:
        (session,) = [s for s in today.arena_log()["sessions"] if s["turns"][0]["text"] == prompt]
        return session

    for prompt in (first, battle):
        wait_until(lambda p=prompt: session_of(p)["state"] == "deleted", TTL_S + 15, "deletion")
    log = today.arena_log()
    conversation = session_of(first)
    assert len(conversation["turns"]) == 2  # the second turn continued it
    (second,) = [
        s
        for s in log["streams"]
        if s["session_id"] == conversation["id"] and s["endpoint"] == "post"
    ]
    assert second["status"] == "finished" and second["sent_at"][-1] - second["sent_at"][0] > TTL_S
    delete_id = today.arena("GET", "info").json()["actions"]["deleteEvaluationSession"]
    deletes: dict[str, dict] = {}  # the first call for each session
    for request in log["requests"]:
        if request["next_action"] == delete_id:
            deletes.setdefault(request["body"][0], request)
    assert {conversation["id"], session_of(battle)["id"]} <= set(deletes)  # earlier tests' too
    # Not before the bridge forgot the thread: a TTL after the end of its last answer.
    assert deletes[conversation["id"]]["received_at"] >= second["sent_at"][-1] + TTL_S - 0.05

    # The conversation goes on, in a new chat, without an error.
    start = since(today)
    history += [{"role": "user", "content": unique("And now?")}]
    assert ask(today, history).startswith("Turn 1 of «<user>")
    assert [r["path"] for r in streamed(today, start, "")] == [CREATE_PATH]
