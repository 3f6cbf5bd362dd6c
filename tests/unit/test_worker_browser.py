from __future__ import annotations

import os
import subprocess
from pathlib import Path

from shared.settings import Settings
from worker.browser.chromium import (
    BASE_ARGS,
    DISABLED_FEATURES,
    chromium_args,
    is_headless,
    private_driver,
    profile_dir,
)


def test_headless_unless_asked_or_a_display_is_set() -> None:
    assert is_headless(None, {}) is True
    assert is_headless(None, {"DISPLAY": ":99"}) is False
    assert is_headless(True, {"DISPLAY": ":99"}) is True
    assert is_headless(False, {}) is False


def test_switches_keep_chromium_quiet_and_append_the_extra_ones() -> None:
    extra = ["--host-resolver-rules=MAP * ~NOTFOUND"]
    args = chromium_args(extra, headless=True, root=True)
    assert args[: len(BASE_ARGS)] == list(BASE_ARGS)
    for switch in (
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--no-sandbox",
        "--disable-gpu",
    ):
        assert switch in args
    assert args[-1] == extra[0]


def test_no_sandbox_switch_only_for_root_and_gpu_kept_when_headed() -> None:
    args = chromium_args([], headless=False, root=False)
    assert "--no-sandbox" not in args
    assert "--disable-gpu" not in args and "--in-process-gpu" not in args
    assert "--in-process-gpu" in chromium_args([], headless=True, root=False)


def test_features_disabled_by_extra_switches_join_ours_in_one_switch() -> None:
    extra = ["--disable-features=Translate,SpareRendererForSitePerProcess", "--lang=de"]
    args = chromium_args(extra, headless=True, root=False)
    disabling = [arg for arg in args if arg.startswith("--disable-features=")]
    assert disabling == ["--disable-features=" + ",".join([*DISABLED_FEATURES, "Translate"])], (
        "Chromium heeds only the last --disable-features"
    )
    assert args[-1] == "--lang=de"
    assert "--disable-features=" + ",".join(DISABLED_FEATURES) in chromium_args(
        [], headless=True, root=False
    )


def test_a_proxied_browser_goes_through_its_forwarder_for_everything_loopback_too() -> None:
    extra = ["--proxy-server=http://elsewhere:1", "--lang=en"]
    args = chromium_args(extra, headless=True, root=False, proxy="127.0.0.1:4321")
    # Last, so that Chromium (which heeds the last of a repeated switch) takes ours.
    assert args[-2:] == ["--proxy-server=http://127.0.0.1:4321", "--proxy-bypass-list=<-loopback>"]
    assert not any("proxy" in arg for arg in chromium_args([], headless=True, root=False))


def test_each_worker_gets_its_own_driver_copy_and_profile(tmp_path: Path) -> None:
    original = tmp_path / "chromedriver"
    original.write_bytes(b"\x7fELF driver")
    original.chmod(0o755)
    settings = Settings(state_dir=tmp_path / "state", chromedriver_path=str(original))

    one, two = private_driver(settings, "w-1"), private_driver(settings, "w-2")
    assert one != two and one.parent.name == "w-1"
    # What uc starts is a launcher of the worker's own copy, which uc takes as patched.
    copy = one.with_name("chromedriver.bin")
    assert str(copy) in one.read_text() and "undetected chromedriver" in one.read_text()
    assert copy.read_bytes() == original.read_bytes() and os.access(copy, os.X_OK)
    assert os.access(one, os.X_OK)
    copy.write_bytes(b"patched")  # what undetected-chromedriver does to a copy
    assert original.read_bytes() == b"\x7fELF driver"

    assert profile_dir(settings, "w-1") == tmp_path / "state" / "profiles" / "w-1"
    assert profile_dir(Settings(profile_dir=tmp_path / "p"), "w-1") == tmp_path / "p"


def test_a_new_copy_replaces_one_whose_driver_is_still_running(tmp_path: Path) -> None:
    # A restarted browser gets a fresh copy while the old chromedriver may still be exiting:
    # Linux refuses to open a running executable for writing ("Text file busy").
    settings = Settings(state_dir=tmp_path / "state", chromedriver_path="/bin/sleep")
    running = subprocess.Popen([str(private_driver(settings, "w-1")), "30"])
    try:
        again = private_driver(settings, "w-1")
        copy = again.with_name("chromedriver.bin")
        assert copy.read_bytes() == Path("/bin/sleep").read_bytes() and os.access(copy, os.X_OK)
        # Nothing staged is left behind.
        assert sorted(p.name for p in again.parent.iterdir()) == [
            "chromedriver",
            "chromedriver.bin",
        ]
    finally:
        running.kill()
        running.wait()
