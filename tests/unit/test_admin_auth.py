"""The admin surfaces' pure parts: signed sessions, CSRF and login tokens, redirects, the rows
the page shows, the screens' derived VNC passwords, and what `up` gives the admin page."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cli.supervisor import admin_key, describe, worker_display
from gateway.admin.page import from_now, worker_rows
from gateway.admin.sign_in import (
    csrf_token,
    login_token_matches,
    new_login_token,
    new_session,
    read_session,
    safe_next,
)
from shared.credentials import vnc
from shared.fleet.account_pacing import Pace, Standing
from shared.fleet.worker_status import WorkerState, WorkerStatus
from shared.settings import Settings
from shared.storage import redis_keys

KEY = "the-admin-key"


def test_a_session_reads_back_until_it_expires() -> None:
    value, session = new_session(KEY, lifetime_s=60, now=1000.0)
    assert read_session(KEY, value, now=1059.0) == session
    assert read_session(KEY, value, now=1060.0) is None
    assert KEY not in value


def test_a_session_signed_with_another_key_or_tampered_is_refused() -> None:
    value, _ = new_session(KEY, lifetime_s=60, now=1000.0)
    assert read_session("another-key", value, now=1001.0) is None
    # The first character of each part carries six bits that count (a last one may carry
    # padding bits the decoder ignores): change it in the payload and in the signature.
    payload_at, signature_at = 0, value.rindex(".") + 1
    for at in (payload_at, signature_at):
        tampered = value[:at] + ("A" if value[at] != "A" else "Q") + value[at + 1 :]
        assert read_session(KEY, tampered, now=1001.0) is None
    assert read_session(KEY, "garbage", now=1001.0) is None


def test_csrf_tokens_are_per_session_and_per_key() -> None:
    _, one = new_session(KEY, lifetime_s=60, now=0)
    _, two = new_session(KEY, lifetime_s=60, now=0)
    assert one.csrf_token != two.csrf_token
    assert one.csrf_token == csrf_token(KEY, one.id)
    assert csrf_token("another-key", one.id) != one.csrf_token


def test_a_login_token_matches_only_its_own_cookie() -> None:
    cookie, field = new_login_token(KEY)
    other_cookie, other_field = new_login_token(KEY)
    assert login_token_matches(KEY, cookie, field)
    assert not login_token_matches(KEY, cookie, other_field)
    assert not login_token_matches(KEY, other_cookie, field)
    assert not login_token_matches(KEY, None, field) and not login_token_matches(KEY, cookie, None)
    assert not login_token_matches("another-key", cookie, field)


def test_only_admin_pages_are_destinations_after_signing_in() -> None:
    assert safe_next("/admin") == "/admin"
    assert safe_next("/admin/workers/w1/screen") == "/admin/workers/w1/screen"
    assert safe_next("/admin?x=1") == "/admin?x=1"
    for elsewhere in (
        None,
        "",
        "//evil.example",
        "https://evil.example/admin",
        "/administrator",
        "/v1/models",
        "/admin\\..\\x",
    ):
        assert safe_next(elsewhere) == "/admin"


def status(worker_id: str, state: WorkerState, **fields) -> WorkerStatus:
    return WorkerStatus(
        id=worker_id,
        state=state,
        queue=redis_keys.worker_queue(worker_id),
        capacity=2,
        updated_at=100.0,
        **fields,
    )


def test_rows_put_those_waiting_for_a_person_first_and_gone_ones_last() -> None:
    live = [
        status("a", WorkerState.READY),
        status("b", WorkerState.LOGIN_REQUIRED, novnc_url="http://127.0.0.1:1", vnc_salt="s"),
        status("c", WorkerState.COOLING, until=130.0),
    ]
    rows = worker_rows(live, ["z"], {redis_keys.worker_queue("z"): 2}, now=110.0)
    assert [(row.id, row.state) for row in rows] == [
        ("b", "login_required"),
        ("a", "ready"),
        ("c", "cooling"),
        ("z", "gone"),
    ]
    assert rows[0].needs == "sign in to an arena account in its browser" and rows[0].screen
    assert not rows[1].screen  # no display
    assert rows[2].until == 130.0 and rows[1].heartbeat_age_s == 10.0
    assert rows[3].gone and rows[3].queued == 2


def test_each_account_shows_its_standing_its_budget_and_when_it_may_call_next() -> None:
    live = [
        status("r", WorkerState.READY, account="ann", egress="203.0.113.7", credits=12.5),
        status("c", WorkerState.COOLING, until=400.0, proxy="socks5://10.0.0.2:1080"),
        status("f", WorkerState.FLAGGED, next_try=1300.0, reason="flagged"),
    ]
    standings = {
        "r": Standing(wait_s=30.0, calls_last_15_minutes=4, calls_today=17),
        "c": Standing(wait_s=0.0, calls_last_15_minutes=1, calls_today=2),
        "f": Standing(wait_s=0.0, calls_last_15_minutes=0, calls_today=3),
    }
    pace = Pace(min_interval_s=45, per_15_minutes=6, per_day=40)
    rows = {row.id: row for row in worker_rows(live, [], {}, 100.0, standings, pace)}
    ready, cooling, flagged = rows["r"], rows["c"], rows["f"]
    assert (ready.calls_15_minutes, ready.budget_15_minutes) == (4, 6)
    assert (ready.calls_today, ready.budget_today) == (17, 40)
    assert (ready.free_at, ready.until, ready.egress, ready.credits) == (
        130.0,
        None,
        "203.0.113.7",
        12.5,
    )
    assert (cooling.until, cooling.free_at, cooling.proxy) == (
        400.0,
        400.0,
        "socks5://10.0.0.2:1080",
    )
    assert (flagged.until, flagged.free_at, flagged.calls_today) == (1300.0, None, 3)
    assert flagged.needs is not None and "Security Verification" in flagged.needs
    assert worker_rows(live, [], {}, 100.0, standings, pace)[0].id == "f"  # a person: first


def test_times_to_come_read_as_a_person_reads_them() -> None:
    assert from_now(None, 100.0) == "" and from_now(100.5, 100.0) == "now"
    assert (from_now(142.0, 100.0), from_now(100.0 + 18 * 60, 100.0)) == ("in 42 s", "in 18 min")
    assert from_now(100.0 + 7200, 100.0).startswith("at ")


def test_a_worker_that_cannot_reach_the_arena_says_why_and_when_it_tries_again() -> None:
    reason = "could not load x (net::ERR_NAME_NOT_RESOLVED). Run `lmarena-bridge doctor` (…)"
    live = [
        status("a", WorkerState.READY, reason="usable", catalog_source="endpoint"),
        status("u", WorkerState.UNREACHABLE, reason=reason, check="page", next_try=118.0),
    ]
    rows = worker_rows(live, [], {}, now=110.0)
    assert [row.id for row in rows] == ["u", "a"]
    assert (rows[0].reason, rows[0].check, rows[0].retry_in_s) == (reason, "page", 8.0)
    assert rows[0].needs is not None and "lmarena-bridge doctor" in rows[0].needs
    assert (rows[1].reason, rows[1].catalog_source) == (None, "endpoint")  # serving: no problem


def test_ups_line_for_a_worker_names_its_problem_and_next_try() -> None:
    reason = "could not load x (net::ERR_NAME_NOT_RESOLVED). Run `lmarena-bridge doctor` (…)"
    waiting = status("u", WorkerState.UNREACHABLE, reason=reason, next_try=1_800_000_000.0)
    line = describe(waiting)
    assert line.startswith(f"unreachable: {reason}; next try at ") and "\n" not in line
    assert describe(waiting) == line  # the same until the next try: printed once
    serving = status("a", WorkerState.READY, models=["m"], catalog_source="page", account="ann")
    assert describe(serving) == "ready (1 models, catalog from the page, as ann, 0/2 busy)"
    assert describe(None) == "starting"


def test_the_vnc_password_derives_from_key_worker_and_salt() -> None:
    password = vnc.password(KEY, "w1", "salt")
    assert len(password) == 8  # VNC authentication reads eight characters
    assert password == vnc.password(KEY, "w1", "salt")
    assert password not in (
        vnc.password(KEY, "w2", "salt"),
        vnc.password(KEY, "w1", "salt2"),
        vnc.password("k2", "w1", "salt"),
    )
    assert vnc.new_salt() != vnc.new_salt()


def test_up_makes_an_admin_key_once_and_keeps_it_private(tmp_path: Path) -> None:
    key, path = admin_key(Settings(), tmp_path)
    assert path == tmp_path / "admin-key" and len(key) >= 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert admin_key(Settings(), tmp_path) == (key, path)
    assert admin_key(Settings(admin_key="mine"), tmp_path) == ("mine", None)


def test_up_gives_workers_a_display_unless_told_otherwise() -> None:
    assert worker_display(Settings(headless=True), {}) is None
    assert worker_display(Settings(), {"LMB_DISPLAY": "off"}) is None
    from worker.browser.display import missing_tools

    assert worker_display(Settings(), {}) == (None if missing_tools() else "on")
