"""`lmarena-bridge accounts import | add`: bring arena accounts to the bridge.

Accounts are a person's: the bridge never creates one. A person signs a worker in through its
screen, or exports the cookies of a browser signed in to the arena and imports them here.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from cli import up_control
from cli.supervisor import kept_admin_key, local_redis, missing_browser
from shared.arena.cookie_files import CookieFileError, portable, read_cookie_file
from shared.fleet import cookie_handover
from shared.fleet.cookie_handover import Cookies, Outcome
from shared.settings import Settings
from shared.storage import redis_client, redis_keys

#: How long `import` waits for a running worker to take the cookies and ask the arena.
TAKE_TIMEOUT_S = 60.0

app = typer.Typer(
    help="Arena accounts: import a browser's cookies into a worker, or add a worker to `up`.",
    no_args_is_help=True,
)


def _fail(message: str, code: int = 2) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


@app.command("import")
def import_(
    file: Annotated[
        Path,
        typer.Argument(
            help="Cookies exported from a browser signed in to the arena: the JSON array of a"
            " cookie-export extension (Cookie-Editor, EditThisCookie, …) or a Netscape"
            " cookies.txt."
        ),
    ],
    worker: Annotated[
        str, typer.Option("--worker", metavar="NAME", help="The worker to sign in (worker-1, …).")
    ],
) -> None:
    """Sign a worker in with cookies from a person's browser: a running worker takes them at
    once and says who the arena now says it is; a stopped one takes them when it next starts.
    Cookie values are never printed."""
    settings = Settings()
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"{file}: cannot be read ({exc})") from None
    host = urlsplit(settings.arena_origin).hostname or ""
    try:
        cookies = portable(read_cookie_file(text, host))
    except CookieFileError as exc:
        raise _fail(f"{file}: {exc}") from None
    key = kept_admin_key(settings)
    if key is None:
        raise _fail(
            "Importing cookies needs the workers' LMB_ADMIN_KEY (they are sealed with it in"
            " Redis): set it, or run this beside `lmarena-bridge up`, which keeps its own."
        )
    try:
        settings = local_redis(settings)
    except LookupError as exc:
        raise _fail(f"Importing cookies needs the bridge's Redis: {exc}.") from None
    running, outcome = asyncio.run(_hand_over(settings, key, worker, cookies))
    if not running:
        typer.echo(
            f"{worker} is not running: it signs in with these cookies when it next starts (they"
            f" wait for it, sealed, for {cookie_handover.PENDING_TTL_S // 86400} days)."
        )
    elif outcome is None:
        typer.echo(
            f"{worker} has not taken them within {TAKE_TIMEOUT_S:g} s: it takes them once its"
            " arena page is usable (the admin page shows its state and account)."
        )
    elif outcome.signed_in:
        typer.echo(f"{worker}: {outcome.detail}.")
    else:
        raise _fail(f"{worker}: {outcome.detail}.", code=1)


async def _hand_over(
    settings: Settings, key: str, worker: str, cookies: Cookies
) -> tuple[bool, Outcome | None]:
    """Queue the cookies for the worker; whether it runs, and what it made of them."""
    async with redis_client.connect(settings) as redis:
        import_id = await cookie_handover.hand_over(redis, key, worker, cookies)
        if not await redis.exists(redis_keys.worker_heartbeat(worker)):
            return False, None
        return True, await cookie_handover.outcome(redis, import_id, TAKE_TIMEOUT_S)


@app.command()
def add() -> None:
    """Start one more worker under the running `lmarena-bridge up` (no restart), and print
    where to sign its account in. To start with N workers, run `up --workers N`."""
    settings = Settings()
    if problem := missing_browser(settings):
        raise _fail(problem)
    state_dir = settings.state_dir.resolve()
    try:
        reply = up_control.ask(state_dir, {"add": "worker"})
    except up_control.NotRunning as exc:
        raise _fail(f"{exc}: start it first (`lmarena-bridge up --workers N`).") from None
    except (OSError, ValueError) as exc:
        raise _fail(f"`up` did not answer ({exc}).", code=1) from None
    if "error" in reply:
        raise _fail(f"`up` did not add a worker: {reply['error']}.", code=1)
    name, count = reply["worker"], reply["workers"]
    typer.echo(f"{name} is starting under `up` ({count} workers now).")
    typer.echo(
        f"Sign its account in: {reply['sign_in']} (the admin page, with the admin key), or"
        f" import a browser's cookies: lmarena-bridge accounts import FILE --worker {name}"
    )
    typer.echo(f"To start with it next time: lmarena-bridge up --workers {count}")
