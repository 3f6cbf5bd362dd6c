"""`lmarena-bridge accounts add | import` beside a running `up`: workers join without a restart,
and cookies exported from a person's browser, in either common format, sign a worker in."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from shared.arena.cookie_files import read_cookie_file
from tests.fakearena.identity import auth_cookies
from tests.integration.test_cli_up import one_worker, read_until, start_up
from tests.support.procs import ROOT, fake_arena, free_port

pytestmark = pytest.mark.browser

HOST = "127.0.0.1"


@pytest.fixture
def arena(tmp_path: Path) -> Iterator[str]:
    with fake_arena(tmp_path) as origin:
        yield origin


def extension_export(username: str) -> str:
    """What Cookie-Editor exports from a browser signed in to the fake (split auth cookie)."""
    entries = [
        {
            "domain": HOST,
            "hostOnly": True,
            "name": name,
            "value": value,
            "path": "/",
            "secure": False,
            "httpOnly": False,
            "sameSite": "lax",
            "session": False,
            "expirationDate": time.time() + 86400,
            "storeId": "0",
        }
        for name, value in auth_cookies(username, split=True).items()
    ]
    # A clearance of the person's own browser: useless in the worker's, and left out.
    entries.append({"domain": HOST, "name": "cf_clearance", "value": "theirs", "path": "/"})
    return orjson.dumps(entries).decode()


def cookies_txt(username: str) -> str:
    """A Netscape cookies.txt of a browser signed in with one whole auth cookie."""
    ((name, value),) = auth_cookies(username, split=False).items()
    expires = int(time.time()) + 86400
    return (
        "# Netscape HTTP Cookie File\n"
        f"{HOST}\tFALSE\t/\tFALSE\t{expires}\t{name}\t{value}\n"
        f"#HttpOnly_{HOST}\tFALSE\t/\tFALSE\t0\tprovisional_user_id\tguest-of-theirs\n"
    )


def accounts(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli", "accounts", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def imported(env: dict[str, str], path: Path, worker: str) -> str:
    """What `accounts import` printed, having succeeded."""
    done = accounts(env, "import", str(path), "--worker", worker)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def ask(base: str, key: str, prompt: str, arena: str) -> dict:
    """Ask the bridge; the fake's record of the arena call that answered."""
    client = openai.OpenAI(base_url=f"{base}/v1", api_key=key, max_retries=0)
    reply = client.chat.completions.create(
        model="gemini-2.5-pro", messages=[{"role": "user", "content": prompt}]
    )
    assert reply.choices[0].message.content.endswith(prompt)
    log = httpx.get(f"{arena}/__fake/log", timeout=10).json()["requests"]
    (call,) = [
        r
        for r in log
        if isinstance(r["body"], dict)
        and prompt in str(r["body"].get("userMessage", {}).get("content"))
    ]
    return call


def wait_for_account(base: str, key: str, worker: str, account: str | None) -> dict:
    """The worker's row once it serves as `account` (within 60 s)."""
    deadline = time.monotonic() + 60
    rows: list[dict] = []
    while time.monotonic() < deadline:
        rows = httpx.get(
            f"{base}/admin/api/workers", headers={"Authorization": f"Bearer {key}"}, timeout=10
        ).json()["workers"]
        row = next((r for r in rows if r["id"] == worker), None)
        if row is not None and row["account"] == account and row["state"] == "ready":
            return row
        time.sleep(0.5)
    raise AssertionError(f"{worker} did not serve as {account} within 60 s: {rows}")


def test_accounts_join_a_running_up_and_imported_cookies_sign_them_in(
    tmp_path: Path, arena: str
) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = one_worker(tmp_path, arena, port, LMB_WORKERS="0")
    env.pop("LMB_ADMIN_KEY", None)  # `up` makes its own and keeps it; `accounts` finds it there
    state = tmp_path / "state"
    up = start_up(env)
    try:
        banner = read_until(up, "Point your client at", timeout=60)
        client_key = banner.split("with the key ", 1)[1].split()[0]
        admin_key = (state / "admin-key").read_text().strip()

        # One more account, without a restart: `up` starts its worker and says where to sign in.
        added = accounts(env, "add")
        assert added.returncode == 0, added.stderr
        assert "worker-1 is starting under `up` (1 workers now)" in added.stdout
        assert f"{base}/admin/workers/worker-1/screen" in added.stdout
        assert "lmarena-bridge up --workers 1" in added.stdout
        read_until(up, "worker-1: ready", timeout=60)
        wait_for_account(base, admin_key, "worker-1", None)  # a guest so far

        # A cookie-export extension's JSON: the running worker takes it, and the arena's
        # /api/me says who it is now.
        exported = tmp_path / "alice.json"
        exported.write_text(extension_export("alice"))
        assert imported(env, exported, "worker-1") == "worker-1: signed in as alice (/api/me)."
        wait_for_account(base, admin_key, "worker-1", "alice")
        assert ask(base, client_key, "who am I, after the import", arena)["identity"] == (
            "user:alice"
        )
        log = httpx.get(f"{arena}/__fake/log", timeout=10).json()["requests"]
        assert any(
            r["path"] == "/api/me" and r["identity"] == "user:alice" and r["status"] == 200
            for r in log
        )
        # Cloudflare's cookie of the person's browser stayed out of the worker's.
        assert all("cf_clearance" not in r["cookies"] for r in log)

        # A cookies.txt with one whole auth cookie replaces that sign-in.
        netscape = tmp_path / "bob.txt"
        netscape.write_text(cookies_txt("bob"))
        assert imported(env, netscape, "worker-1") == "worker-1: signed in as bob (/api/me)."
        wait_for_account(base, admin_key, "worker-1", "bob")

        # Cookies that do not sign the browser in leave the sign-in it had (these are dropped by
        # Chromium: SameSite=None without Secure; the arena's /api/me then says signed out).
        insecure = tmp_path / "dave.json"
        insecure.write_text(
            orjson.dumps(
                [
                    {**entry, "sameSite": "no_restriction"}
                    for entry in orjson.loads(extension_export("dave"))
                ]
            ).decode()
        )
        refused = accounts(env, "import", str(insecure), "--worker", "worker-1")
        assert refused.returncode == 1, refused.stdout
        assert refused.stderr.strip() == (
            "worker-1: the arena does not take them (/api/me says signed out): export them again"
            " from a browser signed in to the arena; the worker keeps the sign-in it had."
        )
        assert ask(base, client_key, "still bob?", arena)["identity"] == "user:bob"

        # A file that cannot sign anyone in says why, and nothing reaches the worker.
        bad = tmp_path / "guest.txt"
        bad.write_text(f"{HOST}\tFALSE\t/\tFALSE\t0\tprovisional_user_id\tsomeone\n")
        refused = accounts(env, "import", str(bad), "--worker", "worker-1")
        assert refused.returncode == 2
        assert refused.stderr.strip() == (
            f"{bad}: no signed-in arena session for {HOST} in the file: export the cookies of "
            f"{HOST} from a browser that is signed in there"
        )
        broken = tmp_path / "broken.json"
        broken.write_text('[{"name": "arena-auth-prod-v1", "value": "a-secret-value"}]')
        refused = accounts(env, "import", str(broken), "--worker", "worker-1")
        assert refused.returncode == 2
        assert "cookie 1 ('arena-auth-prod-v1') has no name, value or domain" in refused.stderr
        assert "a-secret-value" not in refused.stderr + refused.stdout

        # A worker that is not running takes them when it starts.
        later = tmp_path / "carol.json"
        later.write_text(extension_export("carol"))
        assert imported(env, later, "worker-2").startswith(
            "worker-2 is not running: it signs in with these cookies"
        )
        added = accounts(env, "add")
        assert added.returncode == 0 and "worker-2 is starting" in added.stdout, added.stderr
        wait_for_account(base, admin_key, "worker-2", "carol")
        wait_for_account(base, admin_key, "worker-1", "bob")

        # No cookie's value anywhere in what `up` and its workers logged.
        logged = "".join(p.read_text() for p in (state / "logs").glob("*.log"))
        assert "signed in as carol" in logged
        for path in (exported, netscape, later):
            for cookie in read_cookie_file(path.read_text(), HOST):
                assert cookie["value"] not in logged

        up.send_signal(signal.SIGINT)
        assert up.wait(timeout=60) == 0
    finally:
        if up.poll() is None:
            up.kill()
    # With no `up` running, `accounts add` says so.
    alone = accounts(env, "add")
    assert alone.returncode == 2
    assert f"no `lmarena-bridge up` runs with the state dir {state}" in alone.stderr
