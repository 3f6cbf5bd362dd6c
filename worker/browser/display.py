"""The worker's own screen: Xvfb for a headed Chromium, x11vnc showing it, websockify with noVNC.

Nothing here is reachable from outside. x11vnc listens on a unix socket in a private directory
(never on TCP) and asks for a password; websockify, the one port, listens on `LMB_NOVNC_HOST`
(loopback by default) and `LMB_NOVNC_PORT` (a free port by default; a fixed one where a network
policy or probe names it) and serves the noVNC client from `/usr/share/novnc`. People reach the
screen through the gateway's admin page, which proxies both behind admin authentication.

The password is derived from the admin key and a salt random per start (`shared.credentials.vnc`): the
heartbeat carries the salt, never the password. A worker without an admin key uses a random
password nobody else knows; its screen is then closed, like the admin page itself.

The display outlives a signal sent to the worker's whole process group (Ctrl-C, `docker stop`
of a group, a supervisor): Chromium must close first, on a live display, or it dies without
writing the profile (the arena sign-in among it). Its processes run in a session of their own,
stopped by the worker after the browser, and die with the worker should it be killed outright
(a parent-death signal, set by util-linux's `setpriv`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Literal

from shared.credentials import vnc
from shared.settings import Settings

logger = logging.getLogger(__name__)

#: The screen's size; Chromium's window fills it.
SCREEN = (1280, 800)
NOVNC_DIR = Path("/usr/share/novnc")
TOOLS = ("Xvfb", "x11vnc", "websockify", "setpriv")
_START_TIMEOUT_S = 15.0
_STOP_TIMEOUT_S = 5.0
_POLL_S = 0.05


def missing_tools(which: Mapping[str, str | None] | None = None) -> list[str]:
    """What a display needs and this machine lacks."""
    found = which if which is not None else {tool: shutil.which(tool) for tool in TOOLS}
    missing = [tool for tool in TOOLS if not found.get(tool)]
    if not (NOVNC_DIR / "core" / "rfb.js").is_file():
        missing.append(f"noVNC in {NOVNC_DIR}")
    return missing


def wanted(mode: Literal["auto", "on", "off"], headless: bool | None, missing: list[str]) -> bool:
    """Whether the worker runs its own display (see the `LMB_DISPLAY` setting)."""
    if mode == "off":
        return False
    if mode == "on":
        if headless:
            raise ValueError("LMB_DISPLAY=on runs Chromium headed: leave LMB_HEADLESS unset")
        if missing:
            raise RuntimeError(
                f"LMB_DISPLAY=on needs {', '.join(missing)} (apt-get install xvfb x11vnc novnc)"
            )
        return True
    return not headless and not missing


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


@dataclass
class Display:
    #: X display number (`:N`).
    number: int
    #: Where gateways reach noVNC: `http://host:port` (files) and `ws://host:port/websockify`.
    novnc_url: str
    #: Published with the heartbeat; None when the password is random (no admin key).
    salt: str | None
    _processes: dict[str, subprocess.Popen] = field(repr=False)
    _private: Path = field(repr=False)

    @classmethod
    async def start(cls, settings: Settings, worker_id: str) -> Display:
        # Short, private (0700) and ours alone: it holds the VNC socket and, briefly, the password.
        private = Path(tempfile.mkdtemp(prefix="lmb-vnc-"))
        processes: dict[str, subprocess.Popen] = {}
        # A local append-only log opens at once: no thread needed.
        with open(_log_path(settings, worker_id), "ab") as log:  # noqa: ASYNC230
            try:
                number = await _start_xvfb(processes, log)
                salt, password = _password(settings, worker_id)
                socket_path = await _start_x11vnc(processes, log, number, private, password)
                host = settings.novnc_host
                port = settings.novnc_port or free_port(host)
                await _start_websockify(processes, log, host, port, socket_path)
            except BaseException:
                await asyncio.to_thread(_stop_all, processes)
                shutil.rmtree(private, ignore_errors=True)
                raise
        display = cls(number, _novnc_url(host, port), salt, processes, private)
        logger.info(
            "display :%d for %s; noVNC at %s (through the admin page)",
            number,
            worker_id,
            display.novnc_url,
        )
        return display

    def chromium_args(self) -> list[str]:
        width, height = SCREEN
        return [
            f"--display=:{self.number}",
            "--window-position=0,0",
            f"--window-size={width},{height}",
        ]

    def exited(self) -> str | None:
        """The first of its processes that is no longer running, if any."""
        for name, process in self._processes.items():
            if process.poll() is not None:
                return f"{name} exited with {process.returncode}"
        return None

    async def watch(
        self,
        settings: Settings,
        worker_id: str,
        *,
        changed: Callable[[], None],
        period: float = 1.0,
    ) -> str:
        """Keep the screen watchable: an x11vnc or websockify that exits is started again (with
        a new password, and a new port unless LMB_NOVNC_PORT fixes it; then `changed()`), the
        browser left as it is. Returns (why) once Xvfb itself has ended: the browser on it is
        gone too."""
        while True:
            await asyncio.sleep(period)
            screen = self._processes["Xvfb"]
            if screen.poll() is not None:
                return f"Xvfb exited with {screen.returncode}"
            if (problem := self.exited()) is not None:
                logger.warning("display :%d: %s; starting its viewer again", self.number, problem)
                await self._restart_viewer(settings, worker_id)
                changed()

    async def _restart_viewer(self, settings: Settings, worker_id: str) -> None:
        viewer = {name: p for name, p in self._processes.items() if name != "Xvfb"}
        await asyncio.to_thread(_stop_all, viewer)
        for name in viewer:
            del self._processes[name]
        for leftover in ("vnc.sock", "passwd"):
            (self._private / leftover).unlink(missing_ok=True)
        # A local append-only log opens at once: no thread needed.
        with open(_log_path(settings, worker_id), "ab") as log:  # noqa: ASYNC230
            self.salt, password = _password(settings, worker_id)
            socket_path = await _start_x11vnc(
                self._processes, log, self.number, self._private, password
            )
            host = settings.novnc_host
            port = settings.novnc_port or free_port(host)
            await _start_websockify(self._processes, log, host, port, socket_path)
        self.novnc_url = _novnc_url(host, port)

    async def close(self) -> None:
        await asyncio.to_thread(_stop_all, self._processes)
        shutil.rmtree(self._private, ignore_errors=True)


def _log_path(settings: Settings, worker_id: str) -> Path:
    logs = settings.state_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    return logs / f"{worker_id}-display.log"


def _novnc_url(host: str, port: int) -> str:
    return f"http://{f'[{host}]' if ':' in host else host}:{port}"


def _password(settings: Settings, worker_id: str) -> tuple[str | None, str]:
    if settings.admin_key is None:
        return None, vnc.new_salt()[:8]
    salt = vnc.new_salt()
    return salt, vnc.password(settings.admin_key.get_secret_value(), worker_id, salt)


def _spawn(
    processes: dict[str, subprocess.Popen], log: IO[bytes], args: list[str], **kwargs
) -> subprocess.Popen:
    # Called on the event loop's thread: the parent-death signal follows the thread that forks.
    process = subprocess.Popen(
        ["setpriv", "--pdeathsig", "TERM", "--", *args],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
        **kwargs,
    )
    processes[args[0]] = process
    return process


async def _start_xvfb(processes: dict[str, subprocess.Popen], log: IO[bytes]) -> int:
    """Xvfb on a display number it picks itself (`-displayfd`), so workers never collide."""
    read_end, write_end = os.pipe()
    try:
        width, height = SCREEN
        process = _spawn(
            processes,
            log,
            [
                "Xvfb",
                "-displayfd",
                str(write_end),
                "-screen",
                "0",
                f"{width}x{height}x24",
                "-nolisten",
                "tcp",
            ],
            pass_fds=(write_end,),
        )
        os.close(write_end)
        write_end = -1
        return await asyncio.to_thread(_read_display, read_end, process)
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


def _read_display(read_end: int, process: subprocess.Popen) -> int:
    number = b""
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not number.endswith(b"\n"):
        remaining = deadline - time.monotonic()
        if remaining <= 0 or process.poll() is not None:
            raise RuntimeError("Xvfb did not start")
        if select.select([read_end], [], [], remaining)[0]:
            chunk = os.read(read_end, 16)
            if not chunk:
                raise RuntimeError("Xvfb did not start")
            number += chunk
    return int(number)


async def _start_x11vnc(
    processes: dict[str, subprocess.Popen],
    log: IO[bytes],
    number: int,
    private: Path,
    password: str,
) -> Path:
    socket_path = private / "vnc.sock"
    password_file = private / "passwd"
    # Never on a command line (ps shows those): a file only we can read, which x11vnc removes (rm:).
    fd = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(password + "\n")
    process = _spawn(
        processes,
        log,
        [
            "x11vnc",
            "-display",
            f":{number}",
            "-rfbport",
            "0",  # no TCP at all: the unix socket only
            "-unixsock",
            str(socket_path),
            "-passwdfile",
            f"rm:{password_file}",
            "-forever",
            "-shared",
            "-noxdamage",
            "-quiet",
        ],
    )
    await _wait(socket_path.exists, process, "x11vnc")
    return socket_path


async def _start_websockify(
    processes: dict[str, subprocess.Popen], log: IO[bytes], host: str, port: int, socket_path: Path
) -> None:
    process = _spawn(
        processes,
        log,
        ["websockify", "--web", str(NOVNC_DIR), f"--unix-target={socket_path}", f"{host}:{port}"],
    )

    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.2):
            return True
        return False

    await _wait(listening, process, "websockify")


async def _wait(ready: Callable[[], bool], process: subprocess.Popen, name: str) -> None:
    deadline = time.monotonic() + _START_TIMEOUT_S
    while not ready():
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not start (see the display log)")
        await asyncio.sleep(_POLL_S)


def _stop_all(processes: dict[str, subprocess.Popen]) -> None:
    # The viewers' side first, the screen last.
    for process in reversed(processes.values()):
        if process.poll() is None:
            process.terminate()
    for process in reversed(processes.values()):
        try:
            process.wait(_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
