"""`lmarena-bridge up | gateway | worker | doctor | keys | accounts`."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import typer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from cli import account_commands, key_commands
from shared import logs
from shared.credentials import admin_key
from shared.settings import MAX_WORKERS, Settings
from shared.storage import redis_client

app = typer.Typer(
    help="OpenAI- and Anthropic-compatible API for the models on LMArena, served by real browsers.",
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(key_commands.app, name="keys")
app.add_typer(account_commands.app, name="accounts")


def _settings() -> Settings:
    settings = Settings()
    logs.configure(settings)
    return settings


def _require_redis(settings: Settings, what: str) -> None:
    if not redis_client.configured(settings):
        typer.echo(
            f"{what} needs a Redis: set LMB_REDIS_URL or LMB_REDIS_SENTINELS (or run "
            "`lmarena-bridge up`, which starts an embedded one).",
            err=True,
        )
        raise typer.Exit(2)


def _refuse_exposure(settings: Settings) -> None:
    from gateway.access.client_auth import exposure_problem

    if problem := exposure_problem(settings):
        typer.echo(problem, err=True)
        raise typer.Exit(2)


@app.command()
def up(
    workers: int | None = typer.Option(
        None,
        "--workers",
        metavar="N",
        min=0,
        max=MAX_WORKERS,
        help="Workers (arena accounts) to start with; default LMB_WORKERS. More join later"
        " with `lmarena-bridge accounts add`.",
    ),
) -> None:
    """Run everything on this machine: Redis (embedded unless LMB_REDIS_URL), a gateway, workers."""
    from cli.supervisor import run_all

    settings = _settings()
    if workers is not None:
        settings = settings.model_copy(update={"workers": workers})
    _refuse_exposure(settings)
    raise typer.Exit(run_all(settings))


@app.command()
def gateway() -> None:
    """Run one gateway (needs LMB_REDIS_URL)."""
    settings = _settings()
    _require_redis(settings, "The gateway")
    _refuse_exposure(settings)
    from gateway.http.server import serve

    serve(settings)


@app.command()
def worker() -> None:
    """Run one browser worker (needs LMB_REDIS_URL)."""
    settings = _settings()
    _require_redis(settings, "A worker")
    # The key derives its screen's VNC password: a weak one would open the screen.
    weak = admin_key.problem(settings.admin_key.get_secret_value() if settings.admin_key else None)
    if weak:
        typer.echo(weak, err=True)
        raise typer.Exit(2)
    from worker.main import run

    asyncio.run(run(settings))


@app.command()
def doctor(
    profile: Path | None = typer.Option(
        None,
        "--profile",
        metavar="DIR",
        help="Browser profile to run in. Default: the worker's (LMB_PROFILE_DIR, else that of"
        " LMB_WORKER_ID or worker-1), copied while its worker runs.",
    ),
    as_json: bool = typer.Option(
        False, "--json", help='Print {"ok", "checks": [{"name", "ok", "detail"}]}.'
    ),
    chat: str | None = typer.Option(
        None,
        "--chat",
        metavar="MODEL",
        help="Also ask MODEL for one short answer (spends the account's credit).",
    ),
) -> None:
    """Check, in a real browser, every assumption the bridge makes about the arena at
    LMB_ARENA_URL: one line each, and what to do when one fails. Exits 0 only if all pass."""
    settings = Settings()
    if "LMB_LOG_LEVEL" not in os.environ:  # the checks speak for themselves
        settings = settings.model_copy(update={"log_level": "WARNING"})
    logs.configure(settings)
    from cli.doctor import run_doctor
    from cli.supervisor import missing_browser

    if problem := missing_browser(settings):
        typer.echo(problem, err=True)
        raise typer.Exit(2)
    raise typer.Exit(run_doctor(settings, profile=profile, as_json=as_json, chat=chat))


def main() -> None:
    """The command line. A Redis that does not answer is said in a line, not a traceback."""
    try:
        app()
    except (RedisConnectionError, RedisTimeoutError) as exc:
        typer.echo(
            f"The bridge's Redis did not answer: {exc}. Check LMB_REDIS_URL or "
            "LMB_REDIS_SENTINELS (and LMB_REDIS_PASSWORD), and that Redis runs.",
            err=True,
        )
        raise SystemExit(1) from None
