"""`lmarena-bridge keys create | list | revoke`: client keys, straight in the bridge's Redis."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, TypeVar

import orjson
import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from shared.credentials.client_keys import ApiKey, KeySpec, KeyStore, now_utc
from shared.settings import Settings
from shared.storage import redis_client

T = TypeVar("T")

app = typer.Typer(
    help="Client API keys: made here or in the admin API, stored in Redis only as a hash.",
    no_args_is_help=True,
)


def _run(work: Callable[[KeyStore], Awaitable[T]]) -> T:
    settings = Settings()
    if not redis_client.configured(settings):
        typer.echo(
            "Managing keys needs the bridge's Redis: set LMB_REDIS_URL (or LMB_REDIS_SENTINELS).",
            err=True,
        )
        raise typer.Exit(2)

    async def main() -> T:
        async with redis_client.connect(settings) as redis:
            return await work(KeyStore(redis))

    return asyncio.run(main())


@app.command()
def create(
    name: Annotated[str, typer.Argument(help="Who or what the key is for.")],
    rpm: Annotated[int | None, typer.Option(help="Requests per minute.")] = None,
    concurrent: Annotated[int | None, typer.Option(help="Answers in progress at once.")] = None,
    daily: Annotated[int | None, typer.Option(help="Requests per UTC day.")] = None,
    model: Annotated[
        list[str] | None, typer.Option(help="A model it may use (repeat it); default: every model.")
    ] = None,
    expires: Annotated[
        datetime | None, typer.Option(help="When it stops working (UTC unless a zone is given).")
    ] = None,
) -> None:
    """Make a key. It is printed once, on standard output, and stored only as its hash."""
    try:
        spec = KeySpec(
            name=name,
            requests_per_minute=rpm,
            concurrent_streams=concurrent,
            daily_requests=daily,
            models=model or None,
            expires_at=expires,
        )
    except ValidationError as exc:
        typer.echo(f"Invalid key settings: {exc}", err=True)
        raise typer.Exit(2) from None
    key, record = _run(lambda store: store.create(spec))
    typer.echo(
        f"Made key {record.id} ({record.name}). It is shown this once: keep it now.", err=True
    )
    typer.echo(key)


@app.command("list")
def list_(
    json: Annotated[bool, typer.Option("--json", help="JSON lines, one key each.")] = False,
) -> None:
    """Every key: id, name, first characters, status, limits. Never the keys themselves."""
    records = _run(lambda store: store.list())
    now = now_utc()
    if json:
        for record in records:
            typer.echo(orjson.dumps(record.public(now)).decode())
        return
    table = Table("id", "name", "key", "status", "limits", "models", "expires", "created")
    for record in records:
        table.add_row(
            record.id,
            record.name,
            f"{record.shown}…",
            record.status(now),
            _limits(record),
            ", ".join(record.models) if record.models else "all",
            _when(record.expires_at),
            _when(record.created_at),
        )
    Console().print(table)


@app.command()
def revoke(key_id: Annotated[str, typer.Argument(help="The key's id (see `keys list`).")]) -> None:
    """Revoke a key: every gateway refuses it from its next request on."""
    record = _run(lambda store: store.revoke(key_id))
    if record is None:
        typer.echo(f"No key with id {key_id}.", err=True)
        raise typer.Exit(1)
    typer.echo(f"Revoked key {record.id} ({record.name}).")


def _limits(record: ApiKey) -> str:
    parts = [
        f"{record.requests_per_minute}/min" if record.requests_per_minute else "",
        f"{record.daily_requests}/day" if record.daily_requests else "",
        f"{record.concurrent_streams} at once" if record.concurrent_streams else "",
    ]
    return ", ".join(p for p in parts if p) or "none"


def _when(at: datetime | None) -> str:
    return at.strftime("%Y-%m-%d %H:%M UTC") if at is not None else "never"
