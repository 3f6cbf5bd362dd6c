from __future__ import annotations

import pytest

from shared import events
from shared.arena.errors import (
    ArenaError,
    AuthRequired,
    BadRequest,
    Challenge,
    PromptRefused,
    RateLimited,
    RecaptchaRejected,
    Upstream,
    account_verdict,
    classify,
)
from tests.unit.test_arena_captures import capture

CF_CHALLENGE = (
    '<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title></head><body>'
    "<script>(function(){window._cf_chl_opt={cvId: '3',cZone: 'arena.ai'};}());</script>"
    "</body></html>"
)
CF_BLOCK = (
    "<!DOCTYPE html><html><head><title>Attention Required! | Cloudflare</title></head>"
    '<body><div class="cf-wrapper">Sorry, you have been blocked.'
    ' <div class="g-recaptcha"></div></div></body></html>'
)


def test_captured_429_is_an_image_rate_limit() -> None:
    response = capture("rate-limited-429")["response"]
    error = classify(response["status"], dict(response["headers"]), response["body"])
    assert isinstance(error, RateLimited)
    assert (error.kind, error.status, error.retry_after, error.modality) == (
        "rate_limited",
        429,
        0.0,
        "image",
    )
    assert error.message == "Too many requests, please try again later."
    assert error.to_event() == events.error(
        "rate_limited", "Too many requests, please try again later.", retry_after=0.0, status=429
    )


def test_header_names_are_case_insensitive() -> None:
    error = classify(429, {"Retry-After": "12", "RateLimit-Modality": "chat"}, "slow down")
    assert isinstance(error, RateLimited)
    assert (error.retry_after, error.modality) == (12.0, "chat")


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [
        ({"ratelimit": "limit=3000, remaining=0, reset=27"}, 27.0),
        ({"retry-after": "soon", "ratelimit": "limit=1, remaining=0, reset=86400"}, 86400.0),
        ({"retry-after": "1.5", "ratelimit": "limit=1, remaining=0, reset=60"}, 1.5),
        ({"retry-after": "Wed, 21 Oct 2026 07:28:00 GMT", "ratelimit": "reset=5"}, 5.0),
        ({"retry-after": "inf"}, None),
        ({"retry-after": "-3"}, 0.0),
        ({"ratelimit-policy": "3000;w=300"}, None),
        ({}, None),
    ],
)
def test_retry_after_falls_back_to_the_ratelimit_reset(
    headers: dict[str, str], retry_after: float | None
) -> None:
    error = classify(429, headers, "Too many requests, please try again later.")
    assert isinstance(error, RateLimited)
    assert error.retry_after == retry_after
    assert error.modality is None


def test_recaptcha_refusal() -> None:
    error = classify(
        403, {"content-type": "application/json"}, '{"error":"recaptcha validation failed"}'
    )
    assert isinstance(error, RecaptchaRejected)
    assert (error.kind, error.message, error.status) == (
        "recaptcha",
        "recaptcha validation failed",
        403,
    )


@pytest.mark.parametrize(
    ("status", "headers", "body", "message"),
    [
        (403, {"content-type": "text/html"}, CF_CHALLENGE, "Just a moment..."),
        (503, {"content-type": "text/html"}, CF_CHALLENGE, "Just a moment..."),
        (403, {}, CF_BLOCK, "Attention Required! | Cloudflare"),
        (403, {"CF-Mitigated": "challenge"}, "", "HTTP 403"),
    ],
)
def test_cloudflare_pages_are_challenges(
    status: int, headers: dict[str, str], body: str, message: str
) -> None:
    error = classify(status, headers, body)
    assert isinstance(error, Challenge)
    assert (error.kind, error.status, error.message) == ("challenge", status, message)


def test_login_gate() -> None:
    error = classify(401, {}, '{"error":"LOGIN_GATE"}')
    assert isinstance(error, AuthRequired)
    assert (error.kind, error.login_gate, error.message) == ("auth", True, "LOGIN_GATE")


def test_someone_elses_session_is_auth_without_login_gate() -> None:
    body = '{"error":"User 019a-… does not have access to evaluation session 019b-…"}'
    error = classify(401, {}, body)
    assert isinstance(error, AuthRequired)
    assert not error.login_gate
    assert error.message.startswith("User 019a-")


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('{"error":"Evaluation session ID seems spoofed"}', "Evaluation session ID seems spoofed"),
        ('{"message":"Duplicate message id"}', "Duplicate message id"),
        ('{"error":{"message":"nested"}}', "nested"),
        ("  plain words \n", "plain words"),
        ("x" * 2000, "x" * 500),
        ("", "HTTP 400"),
    ],
)
def test_bad_request_message(body: str, message: str) -> None:
    error = classify(400, {}, body)
    assert isinstance(error, BadRequest)
    assert (error.kind, error.message) == ("bad_request", message)


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (500, "Internal Server Error"),
        (502, "<html><title>502 Bad Gateway</title></html>"),
        (404, ""),
        (403, "Forbidden"),
        (418, ""),
    ],
)
def test_everything_else_is_upstream(status: int, body: str) -> None:
    error = classify(status, {}, body)
    assert type(error) is Upstream
    assert (error.kind, error.status) == ("upstream", status)
    assert error.to_event()["kind"] == "upstream"


def test_errors_are_raisable_arena_errors() -> None:
    with pytest.raises(ArenaError) as caught:
        raise classify(429, {"retry-after": "3"}, "Too many requests")
    assert str(caught.value) == "Too many requests"
    assert caught.value.to_event() == events.error(
        "rate_limited", "Too many requests", retry_after=3.0, status=429
    )


def test_prompt_failed_is_the_accounts_own_refusal_and_says_no_time() -> None:
    error = classify(429, {"content-type": "application/json"}, '{"error":"prompt failed"}')
    assert isinstance(error, PromptRefused) and isinstance(error, RateLimited)
    assert (error.kind, error.status, error.retry_after) == ("rate_limited", 429, None)
    assert error.message == "prompt failed"
    plain = classify(429, {"retry-after": "7"}, "Too many requests, please try again later.")
    assert type(plain) is RateLimited and plain.retry_after == 7.0


@pytest.mark.parametrize(
    ("error", "fresh", "verdict"),
    [
        (RateLimited("Too many requests", retry_after=5), False, "cooling"),
        (PromptRefused("prompt failed"), False, "cooling"),
        (RecaptchaRejected("recaptcha validation failed"), False, None),
        (RecaptchaRejected("recaptcha validation failed"), True, "flagged"),
        (Challenge("Just a moment..."), True, None),
        (BadRequest("Unknown model: x"), True, None),
        (AuthRequired("Unauthorized"), True, None),
    ],
)
def test_what_a_refusal_says_of_the_account(error: ArenaError, fresh: bool, verdict: str) -> None:
    assert account_verdict(error, fresh_token=fresh) == verdict
