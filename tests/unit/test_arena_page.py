from __future__ import annotations

import orjson
import pytest

from shared.arena.page import (
    action_result,
    is_challenge_page,
    recaptcha_site_key,
    server_action_ids,
)
from tests.unit.test_arena_captures import capture

OLD_KEY = "6Led_uYrAAAAAKjxDIF58fgFtX3t8loNAK85bW9I"
NEW_KEY = "6LeTGMcsAAAAALuIlkVwIxaAuZA8VledA6d3Nnb0"


def _captured_actions() -> dict[str, str]:
    """Action ids from upload-actions.json by the name the site gives them."""
    names = ["updateTouConsent", "generateUploadUrl", None, "getSignedUrl", "getEvaluationHistory"]
    found = {}
    for name, step in zip(names, capture("upload-actions")["steps"], strict=True):
        headers = dict(step["request"]["headers"])
        if name is not None:
            found[name] = headers["next-action"]
    return found


@pytest.mark.parametrize(
    ("html", "key"),
    [
        (
            f'<script src="https://www.google.com/recaptcha/enterprise.js?render={NEW_KEY}" async></script>',
            NEW_KEY,
        ),
        (
            f'<link rel="preload" href="https://www.recaptcha.net/recaptcha/enterprise.js?render={OLD_KEY}"/>',
            OLD_KEY,
        ),
        (
            f"<script src='/recaptcha/enterprise.js?onload=cb&amp;render={NEW_KEY}'></script>",
            NEW_KEY,
        ),
        (
            '<script src="https://www.google.com/recaptcha/enterprise.js?render=explicit"></script>',
            None,
        ),
        ("<html><head></head></html>", None),
    ],
)
def test_recaptcha_site_key(html: str, key: str | None) -> None:
    assert recaptcha_site_key(html) == key


def test_server_action_ids_from_minified_chunks() -> None:
    actions = _captured_actions()
    js = "".join(
        [
            '(0,n.createServerReference)("{updateTouConsent}",n.callServer,void 0,',
            'n.findSourceMapURL,"updateTouConsent"),',
            '(0, n.createServerReference)( "{generateUploadUrl}" , n.callServer, void 0, ',
            'n.findSourceMapURL, "generateUploadUrl" );',
            "createServerReference('{getSignedUrl}',callServer,void 0,findSourceMapURL,",
            "'getSignedUrl');",
            '(0,r.createServerReference)("{getEvaluationHistory}",r.callServer,void 0,',
            'r.findSourceMapURL,"getEvaluationHistory")',
            ';function x(){{return"createServerReference"}}',
            'let y=createServerReference("nothex",c,"bogus");',
        ]
    ).format(**actions)
    assert server_action_ids(js) == actions


def test_no_server_actions() -> None:
    assert server_action_ids("console.log('createServerReference')") == {}


@pytest.mark.parametrize("index", [0, 1, 3, 4])
def test_action_result_reads_line_one_of_the_captured_answers(index: int) -> None:
    line_1 = capture("upload-actions")["steps"][index]["response"]["body_line_1"]
    body = f'0:{{"a":"$@1","f":"","b":"build"}}\n{line_1}\n2:I["chunk",[]]\n'
    assert action_result(body) == orjson.loads(line_1[2:])
    assert action_result(body)["success"] is True


def test_generate_upload_url_answer_holds_url_and_key() -> None:
    line_1 = capture("upload-actions")["steps"][1]["response"]["body_line_1"]
    data = action_result(line_1)["data"]
    assert data["key"].endswith("Whisk_ab13ad0c432a14696b04009bd9a37107dr.jpeg")
    assert data["uploadUrl"].startswith("https://")


def test_action_result_keeps_line_separators_inside_json() -> None:
    assert action_result('0:{}\n1:{"text":"a\u2028b"}\n') == {"text": "a\u2028b"}


@pytest.mark.parametrize("body", ['0:{"a":"$@1"}\n', "", '0:{}\n1:{"cut"\n', '11:{"x":1}'])
def test_action_result_missing_or_broken_is_a_value_error(body: str) -> None:
    with pytest.raises(ValueError):
        action_result(body)


@pytest.mark.parametrize(
    "page",
    [
        "Just a moment...",
        "Attention Required! | Cloudflare",
        "<html><head><title>Just a moment...</title></head></html>",
        "<script>window._cf_chl_opt={cType:'managed'}</script>",
        '<script src="/cdn-cgi/challenge-platform/h/g/orchestrate/chl_page/v1?ray=1"></script>',
    ],
)
def test_cloudflare_interstitials_are_challenges(page: str) -> None:
    assert is_challenge_page(page)


@pytest.mark.parametrize(
    "page",
    [
        "LMArena",
        "",
        # The arena itself loads Turnstile for guest sign-up: that is not an interstitial.
        '<html><title>LMArena</title><script src="https://challenges.cloudflare.com/turnstile/v0/api.js"></script></html>',
        '<script src="/cdn-cgi/challenge-platform/scripts/jsd/main.js"></script>',
    ],
)
def test_the_arena_itself_is_not_a_challenge(page: str) -> None:
    assert not is_challenge_page(page)
