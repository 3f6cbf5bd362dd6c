"""One Chromium per worker, started through undetected-chromedriver and never reaching the network
on its own behalf.

undetected-chromedriver rewrites the chromedriver binary it is given and would download one if
it had no path, so each worker hands it a private copy. Selenium is blocking: every call into it
runs in a thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import re
import shlex
import shutil
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import undetected_chromedriver as uc

from shared.settings import Settings
from worker.browser.display import Display

logger = logging.getLogger(__name__)

#: Switches every worker's Chromium gets: no first-run UI, no background traffic of its own,
#: and never throttled as a background tab: a worker's window is often hidden or minimized on
#: its display, and throttled timers and a backgrounded renderer would slow every answer.
BASE_ARGS = (
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--disable-renderer-backgrounding",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
)
#: Chromium features a worker never uses that cost every browser memory and CPU while it idles:
#: the omnibox's web-UI popups (preloaded in a renderer of their own, about 45 MiB and busy even
#: when never shown) and the spare renderer kept warm for the next navigation to another site.
DISABLED_FEATURES = (
    "WebUIOmniboxPopup",
    "WebUIOmniboxAimPopup",
    "WebUIOmniboxFullPopup",
    "SpareRendererForSitePerProcess",
)
_DISABLE_FEATURES = "--disable-features="
#: mallopt's parameter for the size above which a block is mapped on its own (malloc.h).
_M_MMAP_THRESHOLD = -3
_VERSION = re.compile(r"(\d+)\.\d+\.\d+")
_EXIT_WAIT_S = 5.0
#: What undetected-chromedriver looks for in a driver to know it is patched.
_UC_MARKER = "undetected chromedriver"


def is_headless(setting: bool | None, environ: Mapping[str, str]) -> bool:
    """Headless when asked, or when nothing says otherwise and there is no display to draw on."""
    return setting if setting is not None else not environ.get("DISPLAY")


def chromium_args(
    extra: list[str], *, headless: bool, root: bool, proxy: str | None = None
) -> list[str]:
    """The switches a worker's Chromium starts with; `proxy`: the `host:port` of the loopback
    forwarder to the account's proxy (`worker.browser.proxy`), which every request goes through."""
    args = list(BASE_ARGS)
    if headless:
        # No GPU here, so no process for it either: the compositor runs in the browser's own
        # (about 35 MiB less). Headed Chromium on Xvfb keeps its GPU process as it is.
        args += ["--disable-gpu", "--in-process-gpu"]
    if root:
        args.append("--no-sandbox")
    # Chromium heeds only the last of a repeated switch: features the extra switches disable
    # are added to ours rather than replacing them.
    disabled = list(DISABLED_FEATURES)
    rest = []
    for arg in extra:
        if arg.startswith(_DISABLE_FEATURES):
            features = arg.removeprefix(_DISABLE_FEATURES).split(",")
            disabled += [f for f in features if f and f not in disabled]
        else:
            rest.append(arg)
    # Last, so that no extra switch takes the browser around the account's proxy; loopback
    # is proxied too (Chromium skips a proxy for it unless told otherwise).
    proxied = [f"--proxy-server=http://{proxy}", "--proxy-bypass-list=<-loopback>"] if proxy else []
    return [*args, _DISABLE_FEATURES + ",".join(disabled), *rest, *proxied]


def profile_dir(settings: Settings, worker_id: str) -> Path:
    return settings.profile_dir or settings.state_dir / "profiles" / worker_id


def private_driver(settings: Settings, worker_id: str) -> Path:
    """The chromedriver this worker's browser is driven by: private, patched, and ended with
    the worker.

    undetected-chromedriver rewrites the driver it is given, so each worker has a copy of its
    own, patched here by uc's own patcher. uc then starts the driver with nothing the worker can
    add to its process, so it is handed a launcher instead: uc takes it as patched (it carries
    uc's marker) and it starts the copy under `setpriv --pdeathsig`, so that a worker killed
    outright takes its driver with it (util-linux; without setpriv, the copy is used as it is).
    """
    folder = settings.state_dir / "drivers" / worker_id
    folder.mkdir(parents=True, exist_ok=True)
    binary = folder / "chromedriver.bin"
    # Copied and patched aside, then renamed over: the previous browser's driver may still be
    # running from `binary` (Linux refuses to write a running executable; a rename is fine).
    staged = folder / f".chromedriver.{os.getpid()}"
    shutil.copy2(settings.chromedriver_path, staged)
    uc.Patcher(executable_path=str(staged)).auto()
    os.replace(staged, binary)
    if not shutil.which("setpriv"):
        return binary
    target = folder / "chromedriver"
    target.write_text(
        "#!/bin/sh\n"
        f"# {_UC_MARKER}: {binary.name} beside this file is patched; this starts it.\n"
        f'exec setpriv --pdeathsig TERM -- {shlex.quote(str(binary))} "$@"\n'
    )
    target.chmod(0o700)
    return target


def launcher(settings: Settings, worker_id: str) -> str:
    """What to start Chromium with: in a session of its own, ended if the worker dies.

    A signal to the worker's whole process group (Ctrl-C, a supervisor, a test) would otherwise
    reach every Chromium process at once, and the network service, killed before the browser
    asks it to, never writes the cookies (the arena sign-in) to the profile. Out of the group,
    Chromium is closed by the worker, in order; `setpriv --pdeathsig` still ends it with the
    worker. Both tools are util-linux's; without them Chromium starts as it is.
    """
    if not (shutil.which("setsid") and shutil.which("setpriv")):
        return settings.chromium_path
    target = settings.state_dir / "drivers" / worker_id / "chromium"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(
        f'#!/bin/sh\nexec setsid setpriv --pdeathsig TERM -- {shlex.quote(settings.chromium_path)} "$@"\n'
    )
    target.chmod(0o700)
    return str(target)


def chromium_major(executable: str) -> int | None:
    """The browser's major version, so undetected-chromedriver need not guess (or look it up)."""
    try:
        out = subprocess.run(
            [executable, "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout
    except OSError:
        return None
    match = _VERSION.search(out)
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Browser:
    driver: uc.Chrome
    #: host:port of Chromium's DevTools endpoint.
    debugger_address: str
    #: DevTools target id of the tab the worker drives.
    target_id: str

    @classmethod
    async def launch(
        cls,
        settings: Settings,
        worker_id: str,
        display: Display | None = None,
        proxy: str | None = None,
    ) -> Browser:
        """Chromium on the worker's profile: headed on `display` when there is one, through the
        proxy forwarder at `proxy` when there is one."""
        return await asyncio.to_thread(cls._launch, settings, worker_id, display, proxy)

    @classmethod
    def _launch(
        cls, settings: Settings, worker_id: str, display: Display | None, proxy: str | None
    ) -> Browser:
        headless = display is None and is_headless(settings.headless, os.environ)
        options = uc.ChromeOptions()
        extra = [*(display.chromium_args() if display else []), *settings.chromium_args]
        for arg in chromium_args(extra, headless=headless, root=os.geteuid() == 0, proxy=proxy):
            options.add_argument(arg)
        profile = profile_dir(settings, worker_id)
        profile.mkdir(parents=True, exist_ok=True)
        where = (
            f"headed on display :{display.number}"
            if display
            else "headless"
            if headless
            else "headed"
        )
        logger.info("starting Chromium for %s (%s)", worker_id, where)
        _map_large_blocks_apart()
        driver = uc.Chrome(
            options=options,
            user_data_dir=str(profile),
            browser_executable_path=launcher(settings, worker_id),
            driver_executable_path=str(private_driver(settings, worker_id)),
            version_main=chromium_major(settings.chromium_path),
            headless=headless,
            # uc pipes Chromium's stderr and never reads it: keep it near silent so it never fills.
            log_level=3,
        )
        address = driver.capabilities["goog:chromeOptions"]["debuggerAddress"]
        return cls(driver, address, driver.current_window_handle)

    async def open(self, url: str) -> None:
        """Navigate the tab and wait for the page's load event."""
        await asyncio.to_thread(self.driver.get, url)

    async def close(self, *, closing: bool = False) -> None:
        """Stop Chromium; `closing`: it was asked to close itself, so let it finish first."""
        await asyncio.to_thread(self._close, closing)

    def _close(self, closing: bool) -> None:
        pid = self.driver.browser_pid
        # A Chromium closing itself is writing its profile: a signal now would lose that.
        if closing and not _exited(pid, _EXIT_WAIT_S):
            logger.warning("Chromium (pid %d) did not close itself in time", pid)
        self.driver.quit()
        # The next Chromium on this profile would hand itself over to a straggler: wait it out,
        # and kill one that hangs (a stopped process never acts on the quit's SIGTERM).
        if not _exited(pid, _EXIT_WAIT_S):
            logger.warning("Chromium (pid %d) still running after quit; killing it", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            _exited(pid, _EXIT_WAIT_S)


def _map_large_blocks_apart() -> None:
    """Have glibc give every large block back to the system as soon as it is freed.

    undetected-chromedriver reads the 25 MB chromedriver and writes a patched copy at every
    launch. glibc maps a block that large on its own and unmaps it once freed, but then raises
    its threshold for that to the block's size, so the next such blocks stay in its arenas when
    freed: about 50 MB a worker would hold for good. A threshold set once stays where it is
    (128 KiB, glibc's default). Without glibc there is nothing to do.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, 128 * 1024)


def _exited(pid: int, timeout_s: float) -> bool:
    """Wait up to `timeout_s` for our child `pid` to end (and reap it)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] != 0:
                return True
        except ChildProcessError:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
