"""What a refused request is told: which limit, in its own words, and when to come back."""

from __future__ import annotations

import pytest

from gateway.access.caller import _too_many
from gateway.access.key_limits import Refusal
from shared.credentials.client_keys import ApiKey
from tests.unit.test_keys import record


@pytest.mark.parametrize(
    ("wait_ms", "seconds"), [(0, 1), (1, 1), (999, 1), (1000, 1), (1001, 2), (59_400, 60)]
)
def test_retry_after_is_whole_seconds_and_never_zero(wait_ms: float, seconds: int) -> None:
    assert Refusal.of("requests_per_minute", wait_ms).retry_after_s == seconds


@pytest.mark.parametrize(
    ("limit", "code", "words"),
    [
        ("requests_per_minute", "rate_limit_exceeded", "5 requests per minute"),
        ("daily_requests", "daily_quota_exceeded", "100 requests per UTC day"),
        ("concurrent_streams", "concurrency_limit_exceeded", "at most 2 at once"),
    ],
)
def test_a_refusal_is_a_429_naming_the_limit(limit: str, code: str, words: str) -> None:
    key: ApiKey = record(requests_per_minute=5, daily_requests=100, concurrent_streams=2)
    error = _too_many(key, Refusal(limit, 7))
    assert (error.status, error.code) == (429, code)
    assert words in error.message
    assert error.headers == {"Retry-After": "7"}
    assert error.body()["error"]["type"] == "requests"
    assert error.anthropic_body()["error"]["type"] == "rate_limit_error"
