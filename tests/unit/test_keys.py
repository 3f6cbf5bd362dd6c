"""Client keys: their form, their hash, their status, and where a gateway may run open."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr, ValidationError
from starlette.datastructures import Headers

from gateway.access.client_auth import exposure_problem, given_key, is_loopback
from shared.client_keys import KEY_PREFIX, ApiKey, KeySpec, key_hash, new_key
from shared.settings import Settings

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def record(**fields: object) -> ApiKey:
    key = "lmb-" + "x" * 43
    return ApiKey(
        name="ci",
        id="0123456789ab",
        shown=key[:8],
        hash=key_hash(key),
        created_at=NOW - timedelta(days=1),
        **fields,
    )


def test_a_new_key_is_recognisable_and_random() -> None:
    made = {new_key() for _ in range(100)}
    assert len(made) == 100
    for key in made:
        assert key.startswith(KEY_PREFIX) and len(key) == len(KEY_PREFIX) + 43
        assert key[len(KEY_PREFIX) :].replace("-", "").replace("_", "").isalnum()


def test_a_key_is_stored_as_its_sha256() -> None:
    assert key_hash("lmb-abc") == hashlib.sha256(b"lmb-abc").hexdigest()


@pytest.mark.parametrize(
    ("fields", "status"),
    [
        ({}, "active"),
        ({"expires_at": NOW + timedelta(seconds=1)}, "active"),
        ({"expires_at": NOW}, "expired"),
        ({"revoked_at": NOW - timedelta(seconds=1)}, "revoked"),
        ({"revoked_at": NOW, "expires_at": NOW - timedelta(days=1)}, "revoked"),
    ],
)
def test_status(fields: dict[str, object], status: str) -> None:
    assert record(**fields).status(NOW) == status


def test_listings_never_show_the_hash() -> None:
    shown = record(requests_per_minute=5).public(NOW)
    assert "hash" not in shown and key_hash("lmb-" + "x" * 43) not in str(shown)
    assert shown["shown"] == "lmb-xxxx" and shown["status"] == "active"
    assert shown["requests_per_minute"] == 5 and shown["models"] is None


def test_a_spec_reads_times_without_zone_as_utc() -> None:
    spec = KeySpec(name="a", expires_at="2030-01-01T12:00:00")
    assert spec.expires_at == datetime(2030, 1, 1, 12, tzinfo=UTC)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": ""},
        {"name": "  "},
        {"name": "a", "requests_per_minute": 0},
        {"name": "a", "concurrent_streams": -1},
        {"name": "a", "daily_requests": 1.5},
        {"name": "a", "models": []},
    ],
)
def test_a_bad_spec_is_refused(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        KeySpec.model_validate(fields)


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"authorization": "Bearer lmb-a"}, "lmb-a"),
        ({"authorization": "bearer  lmb-a "}, "lmb-a"),
        ({"x-api-key": "lmb-b"}, "lmb-b"),
        ({"authorization": "Bearer lmb-a", "x-api-key": "lmb-b"}, "lmb-a"),
        ({"authorization": "lmb-a"}, None),
        ({"authorization": "Bearer "}, ""),
        ({}, None),
    ],
)
def test_the_key_a_client_sent(headers: dict[str, str], key: str | None) -> None:
    assert given_key(Headers(headers)) == key


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.1.2.3", True),
        ("::1", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.10", False),
        ("gateway.internal", False),
    ],
)
def test_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_beyond_loopback_the_gateway_needs_an_admin_key() -> None:
    assert exposure_problem(Settings(host="127.0.0.1")) is None
    assert exposure_problem(Settings(host="0.0.0.0", admin_key=SecretStr("a" * 32))) is None
    problem = exposure_problem(Settings(host="0.0.0.0"))
    assert problem is not None and "LMB_ADMIN_KEY" in problem and "0.0.0.0" in problem
