"""Cookies exported from a person's browser, in both common formats, read for a worker."""

from __future__ import annotations

import base64

import orjson
import pytest

from shared.arena.account import account_label
from shared.arena.cookie_files import CookieFileError, portable, read_cookie_file

SESSION = "base64-" + base64.urlsafe_b64encode(
    orjson.dumps(
        {"access_token": "t", "user": {"id": "u-1", "user_metadata": {"username": "alice"}}}
    )
).decode().rstrip("=")
HALF = len(SESSION) // 2


def exported_json() -> str:
    return orjson.dumps(
        [
            {
                "domain": ".arena.ai",
                "name": "arena-auth-prod-v1.0",
                "value": SESSION[:HALF],
                "path": "/",
                "secure": True,
                "httpOnly": False,
                "sameSite": "lax",
                "expirationDate": 1_900_000_000.5,
                "session": False,
                "storeId": "0",
            },
            {
                "domain": ".arena.ai",
                "name": "arena-auth-prod-v1.1",
                "value": SESSION[HALF:],
                "path": "/",
                "secure": True,
                "httpOnly": False,
                "sameSite": "no_restriction",
                "session": True,
            },
            {
                "domain": "arena.ai",
                "name": "cf_clearance",
                "value": "cf",
                "path": "/",
                "secure": True,
                "httpOnly": True,
                "sameSite": "unspecified",
            },
            {"domain": ".google.com", "name": "NID", "value": "elsewhere", "path": "/"},
        ]
    ).decode()


def exported_txt() -> str:
    return "\n".join(
        [
            "# Netscape HTTP Cookie File",
            "# This is a generated file!  Do not edit.",
            "",
            f".arena.ai\tTRUE\t/\tTRUE\t1900000000\tarena-auth-prod-v1\t{SESSION}",
            "#HttpOnly_arena.ai\tFALSE\t/\tTRUE\t0\tcf_clearance\tcf",
            ".google.com\tTRUE\t/\tFALSE\t1900000000\tNID\telsewhere",
        ]
    )


def test_an_extension_export_keeps_the_arenas_cookies_in_chromiums_words() -> None:
    cookies = read_cookie_file(exported_json(), "arena.ai")
    assert [c["name"] for c in cookies] == [
        "arena-auth-prod-v1.0",
        "arena-auth-prod-v1.1",
        "cf_clearance",
    ]
    first, second, clearance = cookies
    assert first == {
        "name": "arena-auth-prod-v1.0",
        "value": SESSION[:HALF],
        "domain": ".arena.ai",
        "path": "/",
        "secure": True,
        "httpOnly": False,
        "sameSite": "Lax",
        "expires": 1_900_000_000.5,
    }
    assert second["sameSite"] == "None" and "expires" not in second  # a session cookie
    assert clearance["httpOnly"] and "sameSite" not in clearance
    assert account_label({c["name"]: c["value"] for c in cookies}) == "alice"


def test_a_cookies_txt_keeps_the_arenas_cookies_and_its_httponly_marks() -> None:
    cookies = read_cookie_file(exported_txt(), "arena.ai")
    assert [(c["name"], c["httpOnly"], c.get("expires")) for c in cookies] == [
        ("arena-auth-prod-v1", False, 1_900_000_000.0),
        ("cf_clearance", True, None),
    ]
    assert account_label({c["name"]: c["value"] for c in cookies}) == "alice"


def test_cookies_of_a_parent_domain_reach_the_arenas_host_and_others_do_not() -> None:
    on_subdomain = read_cookie_file(exported_txt(), "www.arena.ai")
    assert [c["name"] for c in on_subdomain] == ["arena-auth-prod-v1", "cf_clearance"]
    with pytest.raises(CookieFileError, match=r"no signed-in arena session for lmarena\.ai"):
        read_cookie_file(exported_txt(), "lmarena.ai")


def test_a_broken_entry_is_named_without_its_value() -> None:
    with pytest.raises(CookieFileError) as refused:
        read_cookie_file('[{"name": "arena-auth-prod-v1", "value": "the-secret"}]', "arena.ai")
    assert "arena-auth-prod-v1" in str(refused.value) and "the-secret" not in str(refused.value)


def test_cookies_bound_to_the_exporting_browser_are_left_out() -> None:
    cookies = portable(read_cookie_file(exported_json(), "arena.ai"))
    assert [c["name"] for c in cookies] == ["arena-auth-prod-v1.0", "arena-auth-prod-v1.1"]


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[{"name": "x"}]', r"cookie 1 \('x'\) has no name, value or domain"),
        ('[{"name": "a", "value": "v", "domain": "arena.ai"}, 7]', "cookie 2 has no name"),
        ("[not json", "not a JSON array"),
        ("arena.ai\tTRUE\t/\tTRUE\n", "line 1 is not a cookies.txt line"),
        ("# only comments\n", "no cookies in the file"),
        ("arena.ai\tTRUE\t/\tTRUE\t0\tcf_clearance\tcf\n", "no signed-in arena session"),
    ],
)
def test_a_file_that_cannot_sign_a_worker_in_says_why(text: str, words: str) -> None:
    with pytest.raises(CookieFileError, match=words):
        read_cookie_file(text, "arena.ai")
