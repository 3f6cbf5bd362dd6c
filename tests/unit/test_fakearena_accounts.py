"""Accounts: the auth cookie's forms, `/api/me`, account-scoped failures and catalogs, the flag."""

from __future__ import annotations

import re
from collections.abc import Iterator

import orjson
import pytest

from tests.fakearena.catalog import captured_models
from tests.fakearena.client import ArenaClient
from tests.fakearena.identity import account_id

MODELS = {entry["publicName"]: entry["id"] for entry in captured_models()}
CHAT = MODELS["gemini-2.5-pro"]
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
