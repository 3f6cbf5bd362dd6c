"""Accounts: the auth cookie's forms, `/api/me`, account-scoped failures and catalogs, and the
security flag with its verification (the browser side is in tests/integration)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import orjson
import pytest

from shared.arena.ids import uuid7
from tests.fakearena.catalog import captured_models
from tests.fakearena.client import STREAM, ArenaClient, evaluation_body
from tests.fakearena.identity import account_id

MODELS = {entry["publicName"]: entry["id"] for entry in captured_models()}
CHAT = MODELS["gemini-2.5-pro"]
CREATE = f"{STREAM}/create-evaluation"
PUSH = re.compile(r'self\.__next_f\.push\(\[1,("(?:[^"\\]|\\.)*")\]\)')


def rsc_of(html: str) -> str:
    return "".join(orjson.loads(literal) for literal in PUSH.findall(html))


@pytest.fixture
def other(origin: str) -> Iterator[ArenaClient]:
    """A second browser."""
    with ArenaClient(origin) as other:
        other.visit()
        yield other


@pytest.mark.parametrize("site", ["2025-12", "2026-10"])
def test_api_me_answers_only_a_signed_in_user(client: ArenaClient, site: str) -> None:
    client.scenario(site=site)
    assert client.http.get("/api/me").status_code == 401  # a guest is signed out
    client.sign_in("alice")
    me = client.http.get("/api/me")
    assert me.status_code == 200
    assert me.json() == {"id": account_id("alice"), "user_metadata": {"username": "alice"}}


@pytest.mark.parametrize(
    ("form", "names"),
    [
        ("split", {"arena-auth-prod-v1.0", "arena-auth-prod-v1.1"}),
        ("single", {"arena-auth-prod-v1"}),
    ],
)
def test_sign_in_sets_the_auth_cookie_whole_or_split(
    client: ArenaClient, form: str, names: set[str]
) -> None:
    client.scenario(auth_cookie=form)
    client.sign_in("bob")
    assert {name for name in client.http.cookies if name.startswith("arena-auth")} == names
    assert client.http.get("/api/me").json()["user_metadata"] == {"username": "bob"}
    assert client.create(CHAT, "hi")[1].status_code == 200
    assert client.log()["sessions"][-1]["owner"] == "user:bob"


def test_prompt_failed_is_a_json_429(client: ArenaClient) -> None:
    client.scenario(failures=[{"kind": "prompt_failed"}])
    _, response = client.create(CHAT, "too much")
    assert (response.status_code, response.json()) == (429, {"error": "prompt failed"})
    assert response.headers["content-type"] == "application/json"
    assert "retry-after" not in response.headers
    assert client.create(CHAT, "fine now")[1].status_code == 200


def test_a_failure_can_be_for_one_account(client: ArenaClient, other: ArenaClient) -> None:
    client.sign_in("alice")
    other.sign_in("bob")
    client.scenario(
        failures=[{"kind": "prompt_failed", "account": "user:alice", "after": 1, "times": None}]
    )
    assert other.create(CHAT, "bob first")[1].status_code == 200  # not counted for alice
    assert client.create(CHAT, "alice first")[1].status_code == 200  # skipped (after: 1)
    assert client.create(CHAT, "alice again")[1].status_code == 429
    assert other.create(CHAT, "bob again")[1].status_code == 200
    assert client.create(CHAT, "alice once more")[1].status_code == 429


def test_an_account_can_lack_models_on_the_captured_site(
    client: ArenaClient, other: ArenaClient
) -> None:
    client.sign_in("alice")
    other.sign_in("bob")
    client.scenario(missing_models={"user:alice": ["gemini-2.5-pro"]})
    page = client.visit().text
    assert f'value="{CHAT}"' not in page and 'value="019a98f7-afcd-779f-8dcb-856cc3b3f078"' in page
    rsc = rsc_of(page)
    assert '"initialModels":[' in rsc and f'"id":"{CHAT}"' not in rsc
    _, response = client.create(CHAT, "hi")
    assert (response.status_code, response.json()) == (400, {"error": f"Unknown model: {CHAT}"})
    assert f'value="{CHAT}"' in other.visit().text
    assert other.create(CHAT, "hi")[1].status_code == 200


def test_an_account_can_lack_models_on_the_new_site(
    client: ArenaClient, other: ArenaClient
) -> None:
    entry = {"capabilities": {"inputCapabilities": {"text": True}, "outputCapabilities": {}}}
    names = ["m-one", "m-two", "m-three"]
    groups = [
        {"arena": "text", "models": [{**entry, "id": f"id-{n}", "publicName": n} for n in names]},
        {"arena": "code", "models": [{**entry, "id": "code-m-two", "publicName": "m-two"}]},
    ]
    client.sign_in("alice")
    client.scenario(site="2026-10", catalog=groups, missing_models={"user:alice": ["m-two"]})
    seen = client.http.get("/nextjs-api/model-catalog").json()
    assert [[e["publicName"] for e in g["models"]] for g in seen] == [["m-one", "m-three"], []]
    assert len(other.http.get("/nextjs-api/model-catalog").json()[0]["models"]) == 3
    for model_id in ("id-m-two", "code-m-two"):
        _, response = client.create(model_id, "hi", mode="direct-battle")
        assert (response.status_code, response.json()["error"]) == (
            400,
            f"Unknown model: {model_id}",
        )
    drawn = set()
    for n in range(8):
        client.create(None, f"battle {n}", mode="battle", blind=True)
        drawn |= set(client.log()["streams"][-1]["models"].values())
    assert drawn == {"m-one", "m-three"}


def flags(client: ArenaClient) -> dict[str, dict]:
    return client.http.get("/__fake/flags").json()


def v2_token(client: ArenaClient) -> str:
    return client.http.post("/__fake/recaptcha-token", json={"v2": True}).json()["token"]


def flagged_create(client: ArenaClient, **fields: object) -> int:
    return client.create(CHAT, "hi", **fields)[1].status_code


def test_calls_close_together_flag_the_account(client: ArenaClient, other: ArenaClient) -> None:
    client.sign_in("alice")
    other.sign_in("bob")
    client.scenario(flag={"requests": 3, "within_seconds": 60})
    assert [flagged_create(client) for _ in range(2)] == [200, 200]
    assert other.create(CHAT, "bob's call")[1].status_code == 200
    _, tripped = client.create(CHAT, "third")
    assert (tripped.status_code, tripped.json()) == (403, {"error": "recaptcha validation failed"})
    assert set(flags(client)) == {"user:alice"} and flags(client)["user:alice"]["refused"] == 0
    assert [flagged_create(client) for _ in range(2)] == [403, 403]
    assert flagged_create(client, token="03AFnot-minted-here") == 403
    assert flags(client)["user:alice"]["refused"] == 3  # every attempt, whatever its token
    assert other.create(CHAT, "bob again")[1].status_code == 200
    assert "Security Verification" in client.visit("/").text
    assert "Security Verification" not in other.visit("/").text


def test_a_guest_is_an_account_too(client: ArenaClient) -> None:
    client.scenario(flag={"requests": 1, "within_seconds": 60})
    assert flagged_create(client) == 403
    assert set(flags(client)) == {f"guest:{client.http.cookies['provisional_user_id']}"}


def test_calls_spread_out_do_not_flag(client: ArenaClient) -> None:
    client.scenario(flag={"requests": 2, "within_seconds": 0.2})
    for _ in range(3):
        assert flagged_create(client) == 200
        time.sleep(0.3)  # longer than the window: each call starts a window of its own
    assert flags(client) == {}


def test_a_v2_token_passes_the_check_once_and_clears_the_flag(client: ArenaClient) -> None:
    client.sign_in("carol")
    client.http.post("/__fake/flags", json={"account": "user:carol", "flagged": True})
    assert flagged_create(client) == 403
    body = evaluation_body(model_id=CHAT, content="verified", token="")
    del body["recaptchaV3Token"]
    body["recaptchaV2Token"] = v2_token(client)
    assert client.send("POST", CREATE, body).status_code == 200
    assert flags(client) == {}
    assert "Security Verification" not in client.visit("/").text
    body.update(id=uuid7(), userMessageId=uuid7(), modelAMessageId=uuid7())
    assert client.send("POST", CREATE, body).status_code == 403  # the v2 token was spent
    assert flagged_create(client) == 200


def test_a_flag_can_lapse_and_each_refusal_extends_it(client: ArenaClient) -> None:
    client.sign_in("dan")
    client.scenario(flag={"requests": 1, "within_seconds": 60, "lasts_seconds": 30})
    assert flagged_create(client) == 403
    raised = flags(client)["user:dan"]
    assert raised["until"] == pytest.approx(raised["since"] + 30)
    assert flagged_create(client) == 403
    assert flags(client)["user:dan"]["until"] > raised["until"]
    client.scenario(flag={"requests": 5, "within_seconds": 60, "lasts_seconds": 0.2})
    client.http.post("/__fake/flags", json={"account": "user:dan", "flagged": True})
    time.sleep(0.3)
    assert flags(client) == {} and flagged_create(client) == 200


def test_the_flags_control_refuses_bad_bodies(client: ArenaClient) -> None:
    assert client.http.post("/__fake/flags", json={"account": "user:x"}).status_code == 400
    client.http.post("/__fake/flags", json={"account": "user:x", "flagged": True})
    assert set(flags(client)) == {"user:x"}
    client.http.post("/__fake/flags", json={"account": "user:x", "flagged": False})
    assert flags(client) == {}


@pytest.mark.parametrize("path", ["/", "/?mode=direct", "/c/{session}", "/text/direct"])
def test_a_flagged_accounts_pages_carry_the_verification_modal(
    client: ArenaClient, path: str
) -> None:
    body, _ = client.create(CHAT, "before the flag")
    client.scenario(site="2026-10")
    guest = f"guest:{client.http.cookies['provisional_user_id']}"
    client.http.post("/__fake/flags", json={"account": guest, "flagged": True})
    page = client.http.get(path.format(session=body["id"]), follow_redirects=True).text
    assert "<h2>Security Verification</h2>" in page
    assert 'data-sitekey="6Le3_cYsAAAAAGwWOK2RLDgNI15Bh8C0yLBOL1yL"' in page
    assert '<textarea id="g-recaptcha-response" name="g-recaptcha-response" hidden>' in page
    assert "event.isTrusted" in page


def test_the_modal_checkbox_trades_its_nonce_for_a_v2_token(client: ArenaClient) -> None:
    client.sign_in("erin")
    client.http.post("/__fake/flags", json={"account": "user:erin", "flagged": True})
    nonce = orjson.loads(re.search(r"nonce: (\"[^\"]+\")", client.visit("/").text).group(1))
    verify = "/recaptcha/api2/userverify?k=6Le3_cYsAAAAAGwWOK2RLDgNI15Bh8C0yLBOL1yL"
    assert client.http.post(verify, json={"nonce": "made-up"}).status_code == 403
    assert (
        client.http.post(verify.replace("6Le3", "6LeX"), json={"nonce": nonce}).status_code == 400
    )
    answer = client.http.post(verify, json={"nonce": nonce}).json()
    assert answer["success"] is True
    assert client.http.post(verify, json={"nonce": nonce}).status_code == 403  # single use
    _, response = client.create(CHAT, "verified", token="")
    assert response.status_code == 403
    body = evaluation_body(model_id=CHAT, content="verified", token=client.token())
    body["recaptchaV2Token"] = answer["token"]
    assert client.send("POST", CREATE, body).status_code == 200 and flags(client) == {}
