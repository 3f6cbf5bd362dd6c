"""`lmarena-bridge doctor`: every assumption the bridge makes about the arena at LMB_ARENA_URL,
checked in a real browser with a worker's profile, one line each (`worker.arena.doctor`).

Progress goes to standard error; the findings to standard output (`--json`: one JSON object).
Nothing it prints holds a cookie or a token.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import orjson
from rich.console import Console
from rich.markup import escape

from shared.fleet.diagnosis import Finding
from shared.settings import Settings
from worker.arena.doctor import Doctor, Progress
from worker.arena.session import ArenaSession
from worker.browser.chromium import profile_dir
from worker.browser.proxy import forwarding

#: The worker whose profile is used unless told otherwise: the first one `up` starts.
DEFAULT_WORKER = "worker-1"
#: The doctor's own name for its browser (its private chromedriver copy lives under it).
DOCTOR_ID = "doctor"
#: What a copy of a profile in use leaves out: Chromium's locks and caches.
_NOT_COPIED = shutil.ignore_patterns("Singleton*", "*Cache", "Crashpad", "lockfile")


def run_doctor(settings: Settings, *, profile: Path | None, as_json: bool, chat: str | None) -> int:
    """Run every check and print the findings; 0 when all passed, 1 when one failed."""
    console = Console(stderr=True, highlight=False, soft_wrap=True)

    def progress(text: str) -> None:
        console.print(f"[dim]doctor: {escape(text)} …[/]")

    with chosen_profile(settings, profile, progress) as chosen:
        findings = asyncio.run(
            _examine(settings.model_copy(update={"profile_dir": chosen}), chat, progress)
        )
    ok = all(finding.ok for finding in findings)
    if as_json:
        checks = [{"name": f.check.value, "ok": f.ok, "detail": f.detail} for f in findings]
        print(orjson.dumps({"ok": ok, "checks": checks}).decode())
    else:
        out = Console(highlight=False, soft_wrap=True)
        for finding in findings:
            out.print(_line(finding))
        failed = [finding.check.value for finding in findings if not finding.ok]
        if failed:
            out.print(
                f"\n{len(failed)} of {len(findings)} checks failed ({', '.join(failed)}). "
                'What each check means: README.md, "When the arena changes".'
            )
        else:
            out.print(f"\nAll {len(findings)} checks passed.")
    return 0 if ok else 1


async def _examine(settings: Settings, chat: str | None, progress: Progress) -> list[Finding]:
    progress(f"starting Chromium on {settings.profile_dir}")
    # Through the worker's own proxy: the arena must see the address it knows the account by.
    async with forwarding(settings.proxy) as proxy:
        session = await ArenaSession.start(settings, DOCTOR_ID, proxy=proxy)
        try:
            return await Doctor(settings, session, progress).examine(chat)
        finally:
            await session.close()


def _line(finding: Finding) -> str:
    mark = "[green]✓[/]" if finding.ok else "[red]✗[/]"
    return f"{mark} {finding.check.value}: {escape(finding.detail)}"


@contextlib.contextmanager
def chosen_profile(settings: Settings, given: Path | None, progress: Progress) -> Iterator[Path]:
    """The profile to run in: `given`, else the worker's; a copy of it while a browser holds it
    (Chromium runs one browser per profile), an empty one while it does not exist yet."""
    if given is not None:
        yield given
        return
    worker = profile_dir(settings, settings.worker_id or DEFAULT_WORKER)
    if worker.is_dir() and not in_use(worker):
        yield worker
        return
    with tempfile.TemporaryDirectory(prefix="lmb-doctor-") as tmp:
        copy = Path(tmp) / "profile"
        if worker.is_dir():
            progress(f"{worker} is in use by a running browser: using a copy of it")
            shutil.copytree(worker, copy, ignore=_NOT_COPIED, ignore_dangling_symlinks=True)
        else:
            progress(f"there is no profile at {worker} yet: using an empty one")
        yield copy


def in_use(profile: Path) -> bool:
    """Whether a Chromium on this machine holds the profile (its lock names a live process)."""
    try:
        host, _, pid = os.readlink(profile / "SingletonLock").rpartition("-")
    except OSError:
        return False
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's, or a lock we cannot read: leave it alone
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
