"""`lmarena-bridge keys …` against a real Redis, and the gateway's refusal to run exposed."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from redis.asyncio import Redis

from shared.credentials.client_keys import KeyStore, key_hash
from tests.integration.test_accounts_cli import extension_export
from tests.support.procs import ROOT, free_port


def cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


async def find(url: str, key: str):
    async with Redis.from_url(url) as redis:
        return await KeyStore(redis).find(key)


def test_create_prints_the_key_once_and_list_never_shows_it(redis_url: str) -> None:
    env = {"LMB_REDIS_URL": redis_url}
    made = cli(
        "keys",
        "create",
        "alice",
        "--rpm",
        "5",
        "--concurrent",
        "2",
        "--daily",
        "100",
        "--model",
        "gemini-3-pro",
        "--model",
        "gpt-5",
        "--expires",
        "2030-01-01",
        env=env,
    )
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert made.stdout == key + "\n" and key.startswith("lmb-") and len(key) == 47
    assert key not in made.stderr and "shown this once" in made.stderr
    record = asyncio.run(find(redis_url, key))
    assert record is not None and record.name == "alice"
    assert (record.requests_per_minute, record.concurrent_streams, record.daily_requests) == (
        5,
        2,
        100,
    )
    assert record.models == ["gemini-3-pro", "gpt-5"]
    assert (
        record.expires_at is not None
        and record.expires_at.isoformat() == "2030-01-01T00:00:00+00:00"
    )
    assert record.id in made.stderr

    table = cli("keys", "list", env=env)
    lines = cli("keys", "list", "--json", env=env)
    for listing in (table, lines):
        assert listing.returncode == 0, listing.stderr
        assert key not in listing.stdout and key_hash(key) not in listing.stdout
    assert record.id in table.stdout and "alice" in table.stdout and key[:8] in table.stdout
    assert "5/min, 100/day, 2 at once" in table.stdout
    (shown,) = [json.loads(line) for line in lines.stdout.splitlines()]
    assert shown["id"] == record.id and shown["status"] == "active" and "hash" not in shown

    revoked = cli("keys", "revoke", record.id, env=env)
    assert revoked.returncode == 0 and record.id in revoked.stdout
    assert json.loads(cli("keys", "list", "--json", env=env).stdout)["status"] == "revoked"
    unknown = cli("keys", "revoke", "no-such-id", env=env)
    assert unknown.returncode == 1 and "No key with id no-such-id" in unknown.stderr


def test_bad_settings_are_refused_before_anything_is_made(redis_url: str) -> None:
    refused = cli("keys", "create", "bob", "--rpm", "0", env={"LMB_REDIS_URL": redis_url})
    assert refused.returncode == 2 and "requests_per_minute" in refused.stderr
    assert refused.stdout == ""


def test_keys_need_the_redis_url() -> None:
    refused = cli("keys", "list", env={})
    assert refused.returncode == 2 and "LMB_REDIS_URL" in refused.stderr


@pytest.mark.parametrize("command", ["gateway", "up"])
def test_the_bridge_will_not_listen_beyond_loopback_without_an_admin_key(
    redis_url: str, command: str
) -> None:
    refused = cli(
        command, env={"LMB_REDIS_URL": redis_url, "LMB_HOST": "0.0.0.0", "LMB_WORKERS": "0"}
    )
    assert refused.returncode == 2
    assert "LMB_ADMIN_KEY" in refused.stderr and "0.0.0.0" in refused.stderr


def test_a_redis_that_does_not_answer_is_said_in_one_line(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    cookies = tmp_path / "cookies.json"
    cookies.write_text(extension_export("alice"))  # a signed-in session on 127.0.0.1
    env = {
        "LMB_REDIS_URL": f"redis://127.0.0.1:{port}/0",
        "LMB_ARENA_URL": "http://127.0.0.1:9",
        "LMB_ADMIN_KEY": secrets.token_hex(16),
    }
    for args in (("keys", "list"), ("accounts", "import", str(cookies), "--worker", "worker-1")):
        refused = cli(*args, env=env)
        assert refused.returncode == 1, refused.stderr
        assert refused.stderr.startswith("The bridge's Redis did not answer: ")
        assert f"127.0.0.1:{port}" in refused.stderr and "Traceback" not in refused.stderr
