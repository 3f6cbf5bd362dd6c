"""`lmarena-bridge doctor` against the fake arena: every check passes on either site, and each
broken build of the site fails the check it breaks.

The doctor runs as the command it is (its own process, its own headless Chromium) on a profile
signed in to the fake arena beforehand, the way a person signs a worker in.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from shared.fleet.diagnosis import Check
from tests.fakearena.scenario import NEW_SITE
from tests.support.accounts import signed_in_profiles
from tests.support.procs import ROOT, TEST_CHROMIUM_ARGS, fake_arena
from tests.support.sites import SITES

pytestmark = pytest.mark.browser

CHAT = "gemini-2.5-pro"
EVERY_CHECK = [check.value for check in Check]


@pytest.fixture(scope="module")
def arena(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fake_arena(tmp_path_factory.mktemp("doctor-arena")) as origin:
        yield origin


@pytest.fixture(scope="module")
def profile(tmp_path_factory: pytest.TempPathFactory, arena: str) -> Path:
    """A browser profile signed in to the fake arena through its form, as a person would."""
    return signed_in_profiles(tmp_path_factory.mktemp("doctor-profile"), arena, "dora")["dora"]


@pytest.fixture
def scenario(arena: str) -> Iterator[None]:
    yield
    httpx.post(f"{arena}/__fake/reset").raise_for_status()


def set_scenario(arena: str, **knobs: Any) -> None:
    httpx.post(f"{arena}/__fake/scenario", json=knobs).raise_for_status()


def doctor(
    tmp_path: Path, arena: str, *args: str, profile: Path | None = None
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "LMB_ARENA_URL": arena,
        "LMB_STATE_DIR": str(tmp_path / "state"),
        "LMB_HEADLESS": "true",
        "LMB_CHROMIUM_ARGS": json.dumps(TEST_CHROMIUM_ARGS),
        "COLUMNS": "100",
    }
    profile_args = ["--profile", str(profile)] if profile else []
    return subprocess.run(
        [sys.executable, "-m", "cli", "doctor", *profile_args, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )


def checks(run: subprocess.CompletedProcess[str]) -> dict[str, dict]:
    report = json.loads(run.stdout)
    assert report["ok"] is all(c["ok"] for c in report["checks"])
    return {c["name"]: c for c in report["checks"]}


@pytest.mark.parametrize("site", SITES)
def test_every_check_passes_on_either_site(
    tmp_path: Path, arena: str, profile: Path, scenario: None, site: str
) -> None:
    set_scenario(arena, site=site)
    run = doctor(tmp_path, arena, "--json", "--chat", CHAT, profile=profile)
    found = checks(run)
    assert run.returncode == 0, run.stdout + run.stderr
    assert list(found) == EVERY_CHECK and all(c["ok"] for c in found.values())
    assert "signed in as dora" in found["signed_in"]["detail"]
    source, mode = ("endpoint", "direct-battle") if site == NEW_SITE else ("page", "direct")
    assert f"source: {source}" in found["catalog"]["detail"]
    assert f"new chats go out as {mode}" in found["mode"]["detail"]
    assert f"{CHAT} answered" in found["chat"]["detail"]
    assert "starting Chromium" in run.stderr  # progress while the browser starts
    # Never a cookie or a token (the fake's tokens start 03AF, its cookies base64-).
    for secret in ("03AF", "base64-", "access_token"):
        assert secret not in run.stdout + run.stderr


@pytest.mark.parametrize(
    ("knobs", "broken"),
    [
        ({"recaptcha_site_key": "6LdNewKeyAfterTheSiteWasDeployedAgain00"}, "site_key"),
        ({"catalog_endpoint": "absent"}, "catalog"),  # and the page has none either
        ({"missing_actions": ["generateUploadUrl", "getSignedUrl"]}, "upload_actions"),
    ],
)
def test_a_broken_build_of_todays_site_fails_the_check_it_breaks(
    tmp_path: Path, arena: str, profile: Path, scenario: None, knobs: dict, broken: str
) -> None:
    set_scenario(arena, **knobs)
    run = doctor(tmp_path, arena, "--json", profile=profile)
    found = checks(run)
    assert run.returncode == 1
    assert [name for name, c in found.items() if not c["ok"]] == [broken]
    assert "shared/arena/site.py" in found[broken]["detail"]  # where to change the bridge


def test_a_cloudflare_check_fails_the_page_and_what_depends_on_it(
    tmp_path: Path, arena: str, profile: Path, scenario: None
) -> None:
    set_scenario(arena, cloudflare=True)
    run = doctor(tmp_path, arena, profile=profile)  # as a person reads it
    assert run.returncode == 1
    lines = run.stdout.strip().splitlines()
    assert lines[0].startswith("✗ page: Cloudflare put up its check")
    assert [line.split(":")[0] for line in lines[1:7]] == [f"✗ {c}" for c in EVERY_CHECK[1:7]]
    assert all("not checked: `page` failed" in line for line in lines[1:7])
    assert "7 of 7 checks failed" in lines[-1]


def test_an_arena_out_of_reach_fails_the_page_check(tmp_path: Path) -> None:
    run = doctor(tmp_path, "http://arena.invalid", "--json")
    found = checks(run)
    assert run.returncode == 1 and not found["page"]["ok"]
    assert "net::ERR_NAME_NOT_RESOLVED" in found["page"]["detail"]
    assert "there is no profile" in run.stderr  # a worker's profile is never made by the doctor
