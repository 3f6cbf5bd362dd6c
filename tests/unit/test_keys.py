"""Client keys: their form, their hash, their status, and where a gateway may run open."""

from __future__ import annotations

import hashlib
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection

from gateway.access.addresses import client_of, is_local, is_loopback
from gateway.access.client_auth import exposure_problem, given_key
from shared.credentials import admin_key
from shared.credentials.client_keys import KEY_PREFIX, ApiKey, KeySpec, key_hash, new_key
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


STRONG = secrets.token_hex(32)


def test_beyond_loopback_the_gateway_needs_an_admin_key() -> None:
    assert exposure_problem(Settings(host="127.0.0.1")) is None
    assert exposure_problem(Settings(host="0.0.0.0", admin_key=SecretStr(STRONG))) is None
    problem = exposure_problem(Settings(host="0.0.0.0"))
    assert problem is not None and "LMB_ADMIN_KEY" in problem and "0.0.0.0" in problem


def test_an_open_bridge_is_refused_beyond_loopback() -> None:
    assert exposure_problem(Settings(host="127.0.0.1", open=True)) is None
    problem = exposure_problem(Settings(host="0.0.0.0", open=True, admin_key=SecretStr(STRONG)))
    assert problem is not None and "LMB_OPEN=true" in problem and "only on loopback" in problem


def env_example_admin_key() -> str:
    lines = (Path(__file__).resolve().parents[2] / ".env.example").read_text().splitlines()
    return next(line.split("=", 1)[1] for line in lines if line.startswith("LMB_ADMIN_KEY="))


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("correct horse battery staple", "fewer than 32"),
        (env_example_admin_key(), "example value"),
        ("replace-with-your-own-admin-key-please", "example value"),
        ("a" * 40, "only 1 different"),
        ("0123" * 10, "only 4 different"),
    ],
)
def test_a_weak_admin_key_is_refused_at_start_on_any_address(key: str, why: str) -> None:
    for host in ("127.0.0.1", "0.0.0.0"):
        problem = exposure_problem(Settings(host=host, admin_key=SecretStr(key)))
        assert problem is not None and why in problem and "openssl rand -hex 32" in problem
    assert admin_key.weakness(key) is not None


@pytest.mark.parametrize("key", [secrets.token_hex(16), secrets.token_urlsafe(32), STRONG])
def test_random_admin_keys_are_strong(key: str) -> None:
    assert admin_key.weakness(key) is None


@pytest.mark.parametrize(
    ("peer", "headers", "local"),
    [
        ("127.0.0.1", {}, True),
        ("::1", {}, True),
        ("127.0.0.1", {"x-forwarded-for": "203.0.113.7"}, False),
        ("127.0.0.1", {"forwarded": "for=203.0.113.7"}, False),
        ("127.0.0.1", {"x-real-ip": "203.0.113.7"}, False),
        ("192.0.2.1", {}, False),
    ],
)
def test_a_local_request_is_one_from_loopback_that_no_proxy_passed_on(
    peer: str, headers: dict[str, str], local: bool
) -> None:
    assert is_local(connection(peer, headers)) is local


@pytest.mark.parametrize(
    ("peer", "client"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::2", "2001:db8:1:2::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
    ],
)
def test_an_ipv6_client_counts_by_its_64(peer: str, client: str) -> None:
    assert client_of(connection(peer, {})) == client


def test_trusted_proxies_are_addresses_or_networks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LMB_TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7,fd00::/8")
    assert Settings().trusted_proxies == ["10.0.0.0/8", "192.0.2.7", "fd00::/8"]
    monkeypatch.setenv("LMB_TRUSTED_PROXIES", "*")
    assert Settings().trusted_proxies == ["*"]
    monkeypatch.setenv("LMB_TRUSTED_PROXIES", "nginx")
    with pytest.raises(ValidationError, match="nginx"):
        Settings()


def connection(peer: str, headers: dict[str, str]) -> HTTPConnection:
    return HTTPConnection(
        {
            "type": "http",
            "client": (peer, 1234),
            "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
        }
    )
