"""Each check the fake makes on a stream request, with the status and body the site gives."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from shared.arena.ids import uuid7
from tests.fakearena.catalog import captured_models
from tests.fakearena.client import STREAM, ArenaClient, evaluation_body, lines_of

MODELS = {entry["publicName"]: entry["id"] for entry in captured_models()}
CHAT = MODELS["gemini-2.5-pro"]
TEXT_ONLY = MODELS["grok-4.1"]
IMAGE = MODELS["gemini-3-pro-image-preview (nano-banana-pro)"]
SEARCH = MODELS["grok-4-fast-search"]
VIDEO = MODELS["sora-2"]
CREATE = f"{STREAM}/create-evaluation"


@pytest.fixture
def other(origin: str) -> Iterator[ArenaClient]:
    """A second browser: another guest."""
    with ArenaClient(origin) as other:
        other.visit()
        yield other


def refused(response: httpx.Response, status: int, error: str) -> bool:
    return response.status_code == status and response.json()["error"] == error


def test_a_valid_request_streams(client: ArenaClient) -> None:
    _, response = client.create(CHAT, "hello")
    assert response.status_code == 200
    assert lines_of(response)[-1] == 'ad:{"finishReason":"stop"}'


def test_body_must_be_json(client: ArenaClient) -> None:
    assert refused(client.send("POST", CREATE, b"not json"), 400, "Invalid JSON body")
    assert refused(client.send("POST", CREATE, b"[1]"), 400, "Invalid JSON body")


def test_token_must_be_minted_here(client: ArenaClient) -> None:
    _, response = client.create(CHAT, "hi", token="03AFmadeup")
    assert refused(response, 403, "recaptcha validation failed")


def test_token_is_single_use(client: ArenaClient) -> None:
    token = client.token()
    assert client.create(CHAT, "one", token=token)[1].status_code == 200
    assert refused(client.create(CHAT, "two", token=token)[1], 403, "recaptcha validation failed")


def test_token_must_be_for_chat_submit(client: ArenaClient) -> None:
    _, response = client.create(CHAT, "hi", token=client.token("sign_up"))
    assert refused(response, 403, "recaptcha validation failed")


def test_token_expires(client: ArenaClient) -> None:
    client.scenario(token_ttl_seconds=0.2)
    token = client.token()
    time.sleep(0.3)
    assert refused(client.create(CHAT, "late", token=token)[1], 403, "recaptcha validation failed")


def test_a_caller_without_identity_is_refused(origin: str) -> None:
    with ArenaClient(origin) as stranger:  # never loaded a page: no cookie at all
        assert refused(stranger.create(CHAT, "hi")[1], 401, "Unauthorized")


def test_sessions_belong_to_their_creator(client: ArenaClient, other: ArenaClient) -> None:
    body, _ = client.create(CHAT, "mine")
    _, response = other.post(body["id"], CHAT, "let me in")
    guest = other.http.cookies["provisional_user_id"]
    expected = f"User {guest} does not have access to evaluation session {body['id']}"
    assert refused(response, 401, expected)
    assert refused(other.retry(body["id"], body["modelAMessageId"]), 401, expected)
    assert refused(other.stop(body["id"], body["modelAMessageId"]), 401, expected)


def test_unknown_session_and_message(client: ArenaClient) -> None:
    ghost = uuid7()
    assert refused(client.post(ghost, CHAT, "hello?")[1], 404, "Evaluation session not found")
    body, _ = client.create(CHAT, "hi")
    assert refused(client.retry(body["id"], uuid7()), 404, "Message not found")
    # the user message is not a model message
    assert refused(client.retry(body["id"], body["userMessageId"]), 404, "Message not found")


@pytest.mark.parametrize("age", [3700, -3700])
def test_session_id_far_from_the_clock_seems_spoofed(client: ArenaClient, age: int) -> None:
    body = evaluation_body(
        model_id=CHAT,
        content="hi",
        token=client.token(),
        session_id=uuid7(int((time.time() - age) * 1000)),
    )
    assert refused(client.send("POST", CREATE, body), 400, "Evaluation session ID seems spoofed")


def test_session_id_must_be_uuid7(client: ArenaClient) -> None:
    body = evaluation_body(
        model_id=CHAT, content="hi", token=client.token(), session_id=str(uuid.uuid4())
    )
    assert refused(client.send("POST", CREATE, body), 400, "Evaluation session ID seems spoofed")


@pytest.mark.parametrize("field", ["userMessageId", "modelAMessageId"])
def test_message_ids_far_from_the_clock_seem_spoofed(client: ArenaClient, field: str) -> None:
    body = evaluation_body(model_id=CHAT, content="hi", token=client.token())
    body[field] = uuid7(int((time.time() - 7200) * 1000))
    assert refused(client.send("POST", CREATE, body), 400, "Message ID seems spoofed")


def test_message_ids_are_never_reused(client: ArenaClient) -> None:
    first, _ = client.create(CHAT, "hi")
    again = evaluation_body(model_id=CHAT, content="hi", token=client.token())
    again["userMessageId"] = first["userMessageId"]
    assert refused(client.send("POST", CREATE, again), 400, "Message ID already used")
    twice = evaluation_body(model_id=CHAT, content="hi", token=client.token())
    twice["modelAMessageId"] = twice["userMessageId"]
    assert refused(client.send("POST", CREATE, twice), 400, "Message ID already used")


def test_ids_of_a_failed_stream_are_spent_but_not_those_of_a_refused_request(
    client: ArenaClient,
) -> None:
    client.scenario(failures=[{"kind": "cut_stream"}, {"kind": "recaptcha_403", "after": 1}])
    body, response = client.create(CHAT, "cut short")
    assert response.status_code == 200
    body["recaptchaV3Token"] = client.token()
    assert refused(client.send("POST", CREATE, body), 403, "recaptcha validation failed")
    body["recaptchaV3Token"] = client.token()
    assert refused(client.send("POST", CREATE, body), 400, "Evaluation session already exists")
    body.update(id=uuid7(), recaptchaV3Token=client.token())
    assert refused(client.send("POST", CREATE, body), 400, "Message ID already used")


def test_session_ids_are_not_reused(client: ArenaClient) -> None:
    first, _ = client.create(CHAT, "hi")
    again = evaluation_body(
        model_id=CHAT, content="hi", token=client.token(), session_id=first["id"]
    )
    assert refused(client.send("POST", CREATE, again), 400, "Evaluation session already exists")


def test_the_model_must_be_known(client: ArenaClient) -> None:
    model = str(uuid.uuid4())
    assert refused(client.create(model, "hi")[1], 400, f"Unknown model: {model}")


@pytest.mark.parametrize(
    ("model", "modality", "name"),
    [
        (IMAGE, "chat", "gemini-3-pro-image-preview (nano-banana-pro)"),
        (CHAT, "image", "gemini-2.5-pro"),
        (CHAT, "search", "gemini-2.5-pro"),
        (SEARCH, "chat", "grok-4-fast-search"),
    ],
)
def test_the_modality_must_fit_the_model(
    client: ArenaClient, model: str, modality: str, name: str
) -> None:
    _, response = client.create(model, "hi", modality=modality)
    assert refused(response, 400, f"Model {name} does not support modality {modality}")


@pytest.mark.parametrize("modality", ["video", "webdev", None])
def test_unserved_modalities_are_refused(client: ArenaClient, modality: str | None) -> None:
    _, response = client.create(VIDEO, "a film", modality=modality)
    assert refused(response, 400, f"Unsupported modality: {modality}")


def test_prompt_length_limit(client: ArenaClient) -> None:
    _, response = client.create(CHAT, "x" * 113_567)
    assert response.status_code == 200
    _, response = client.create(CHAT, "x" * 113_568)
    assert refused(response, 400, "Message is too long (at most 113567 characters)")


def test_user_message_must_have_content(client: ArenaClient) -> None:
    body = evaluation_body(model_id=CHAT, content="hi", token=client.token())
    body["userMessage"] = {"text": "hi"}
    assert refused(client.send("POST", CREATE, body), 400, "Invalid userMessage")


def test_mode_must_be_known(client: ArenaClient) -> None:
    assert refused(client.create(CHAT, "hi", mode="solo")[1], 400, "Invalid mode: solo")


def test_battle_needs_model_b(client: ArenaClient) -> None:
    _, response = client.create(CHAT, "hi", mode="battle")
    assert refused(response, 400, "Message ID seems spoofed")  # no modelBMessageId
    body = evaluation_body(model_id=CHAT, content="hi", token=client.token(), mode="side-by-side")
    body["modelBMessageId"] = uuid7()
    assert refused(client.send("POST", CREATE, body), 400, "Unknown model: None")


def test_post_body_id_must_match_the_path(client: ArenaClient) -> None:
    first, _ = client.create(CHAT, "hi")
    body = evaluation_body(
        model_id=CHAT, content="next", token=client.token(), session_id=uuid7(), mode=None
    )
    response = client.send("POST", f"{STREAM}/post-to-evaluation/{first['id']}", body)
    assert refused(response, 400, "Evaluation session ID does not match the path")


def test_attachments_must_be_uploaded_here(client: ArenaClient) -> None:
    foreign = {
        "name": "019ad891-b7ae-7cf5-8b0e-d33f7fd71932/1764627827965-x.jpeg",
        "contentType": "image/jpeg",
        "url": "https://messages-prod.ACCOUNT.r2.cloudflarestorage.com/019ad891/x.jpeg?X-Amz-Signature=R",
    }
    _, response = client.create(CHAT, "what is this", attachments=[foreign])
    assert refused(response, 400, f"Invalid attachment: {foreign['name']}")


def test_attachments_need_a_model_that_sees_images(client: ArenaClient) -> None:
    attachment = client.upload("x.png", b"png", "image/png")
    _, response = client.create(TEXT_ONLY, "what is this", attachments=[attachment])
    assert refused(response, 400, "Model does not accept images")
    _, response = client.create(CHAT, "what is this", attachments=[attachment])
    assert response.status_code == 200
    assert "[image/png, 3 bytes]" in client.log()["streams"][-1]["text"]["a"]


def test_signed_in_user_owns_sessions_and_is_named(client: ArenaClient, origin: str) -> None:
    response = client.sign_in("alice")
    assert (response.status_code, response.headers["location"]) == (303, "/")
    assert {"arena-auth-prod-v1.0", "arena-auth-prod-v1.1"} <= set(client.http.cookies)
    assert '<span data-testid="username">alice</span>' in client.visit().text
    body, streamed = client.create(CHAT, "as alice")
    assert streamed.status_code == 200
    assert client.log()["sessions"][0]["owner"] == "user:alice"
    with ArenaClient(origin) as alice_elsewhere:  # same account in another browser
        alice_elsewhere.sign_in("alice")
        assert alice_elsewhere.post(body["id"], CHAT, "still me")[1].status_code == 200


def test_login_needs_username_and_password(client: ArenaClient) -> None:
    page = client.http.get("/login").text
    assert 'name="username"' in page and 'name="password"' in page and 'type="submit"' in page
    assert client.http.post("/login", data={"username": "bob", "password": ""}).status_code == 400
    assert "arena-auth-prod-v1.0" not in client.http.cookies
