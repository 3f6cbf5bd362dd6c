"""`lmarena-bridge up | gateway | worker`."""

from __future__ import annotations

import asyncio
import logging

import typer

from shared.settings import Settings

app = typer.Typer(
    help="OpenAI- and Anthropic-compatible API for the models on LMArena, served by real browsers.",
    no_args_is_help=True,
    add_completion=False,
)


def _settings() -> Settings:
    settings = Settings()
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return settings


def _require_redis(settings: Settings, what: str) -> None:
    if not settings.redis_url:
        typer.echo(
            f"{what} needs a Redis: set LMB_REDIS_URL (or run `lmarena-bridge up`, "
            "which starts an embedded one).",
            err=True,
        )
        raise typer.Exit(2)


@app.command()
def up() -> None:
    """Run everything on this machine: Redis (embedded unless LMB_REDIS_URL), a gateway, workers."""
    from cli.supervisor import run_all

    raise typer.Exit(run_all(_settings()))


@app.command()
def gateway() -> None:
    """Run one gateway (needs LMB_REDIS_URL)."""
    settings = _settings()
    _require_redis(settings, "The gateway")
    from gateway.server import serve

    serve(settings)


@app.command()
def worker() -> None:
    """Run one browser worker (needs LMB_REDIS_URL)."""
    settings = _settings()
    _require_redis(settings, "A worker")
    from worker.main import run

    asyncio.run(run(settings))
