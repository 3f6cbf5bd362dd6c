"""Accounts: the auth cookie's forms, `/api/me`, account-scoped failures and catalogs, the flag."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakearena.catalog import captured_models
from tests.fakearena.client import ArenaClient
from tests.fakearena.identity import account_id

MODELS = {entry["publicName"]: entry["id"] for entry in captured_models()}
CHAT = MODELS["gemini-2.5-pro"]


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
