"""When a worker runs its own screen, and what the arena's auth cookie says about its account."""

from __future__ import annotations

import base64

import orjson
import pytest

from gateway.fleet.catalog_view import Catalog, union
from shared.arena.account import account_label
from shared.arena.catalog import Model
from worker.browser.display import missing_tools, wanted


def test_auto_means_a_display_when_the_tools_are_there_and_headless_is_not_asked() -> None:
    assert wanted("auto", None, []) and wanted("auto", False, [])
    assert not wanted("auto", True, [])
    assert not wanted("auto", None, ["Xvfb"])
    assert not wanted("off", False, [])
    assert wanted("on", None, [])


def test_on_says_clearly_what_stands_in_its_way() -> None:
    with pytest.raises(ValueError, match="LMB_HEADLESS"):
        wanted("on", True, [])
    with pytest.raises(RuntimeError, match="x11vnc"):
        wanted("on", False, ["x11vnc"])


def test_missing_tools_names_each_one() -> None:
    assert missing_tools({"Xvfb": "/usr/bin/Xvfb"})[:3] == ["x11vnc", "websockify", "setpriv"]


def cookie(session: dict) -> str:
    return "base64-" + base64.urlsafe_b64encode(orjson.dumps(session)).decode().rstrip("=")


def test_the_account_is_read_off_the_auth_cookie_whole_or_split() -> None:
    value = cookie(
        {"access_token": "t", "user": {"id": "u1", "user_metadata": {"username": "alice"}}}
    )
    assert account_label({"arena-auth-prod-v1": value}) == "alice"
    half = len(value) // 2
    assert (
        account_label({"arena-auth-prod-v1.0": value[:half], "arena-auth-prod-v1.1": value[half:]})
        == "alice"
    )
    assert (
        account_label({"arena-auth-prod-v1": cookie({"user": {"id": "u1", "email": "a@b.c"}})})
        == "a@b.c"
    )
    assert account_label({"arena-auth-prod-v1": cookie({"user": {"id": "u1"}})}) == "u1"


def test_a_guest_or_a_broken_cookie_is_no_account() -> None:
    assert account_label({"provisional_user_id": "x"}) is None
    assert account_label({"arena-auth-prod-v1": "base64-!!!"}) is None
    assert account_label({"arena-auth-prod-v1": "plain"}) is None
    assert account_label({"arena-auth-prod-v1": cookie({"user": "nobody"})}) is None


def model(name: str) -> Model:
    return Model(name, "chat", {"chat": f"id-{name}"}, "org", accepts_images=False, rank=None)


def test_the_served_catalog_is_the_union_of_the_live_workers() -> None:
    one = Catalog(1.0, {"a": model("a"), "b": model("b")})
    two = Catalog(2.0, {"b": model("b"), "c": model("c")})
    merged = union([one, two])
    assert (
        merged is not None and list(merged.models) == ["a", "b", "c"] and merged.updated_at == 2.0
    )
    assert union([]) is None
