"""The admin JSON API: client keys (create, list, revoke) and usage, behind `require_admin`.

A new key is in the answer to its creation and nowhere else, ever.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from gateway.access.usage import ANONYMOUS, UsageRow
from gateway.admin.sign_in import require_admin
from gateway.http import errors
from gateway.http.services import Services, services
from shared.credentials.client_keys import ApiKey, KeySpec, now_utc

router = APIRouter(prefix="/admin/api", dependencies=[Depends(require_admin)])

#: Days of usage a request gets when it does not say.
DEFAULT_DAYS = 30


@router.post("/keys", status_code=201)
async def create_key(request: Request, svc: Services = Depends(services)) -> dict[str, Any]:
    spec = errors.parse_body(await request.body(), KeySpec)
    key, record = await svc.keys.create(spec)
    return {"key": key, **record.public(now_utc())}


@router.get("/keys")
async def list_keys(svc: Services = Depends(services)) -> dict[str, Any]:
    now = now_utc()
    return {"data": [record.public(now) for record in await svc.keys.list()]}


@router.get("/keys/{key_id}")
async def get_key(key_id: str, svc: Services = Depends(services)) -> dict[str, Any]:
    return (await _existing(svc, key_id)).public(now_utc())


@router.delete("/keys/{key_id}")
async def revoke_key(key_id: str, svc: Services = Depends(services)) -> dict[str, Any]:
    """Revoke a key: every gateway refuses it from the next request on."""
    record = await svc.keys.revoke(key_id)
    if record is None:
        raise _no_such_key(key_id)
    return record.public(now_utc())


@router.get("/keys/{key_id}/usage")
async def key_usage(
    key_id: str, request: Request, svc: Services = Depends(services)
) -> dict[str, Any]:
    record = await _existing(svc, key_id)
    rows = await svc.usage.rows(days=_days(request, svc), key_id=key_id)
    return {"data": [_row(row, {record.id: record}) for row in rows]}


@router.get("/usage")
async def usage(request: Request, svc: Services = Depends(services)) -> dict[str, Any]:
    """Every key's usage per model and UTC day, newest day first: the JSON export."""
    rows = await svc.usage.rows(days=_days(request, svc))
    named = {record.id: record for record in await svc.keys.list()}
    return {"data": [_row(row, named) for row in rows]}


def _days(request: Request, svc: Services) -> int:
    most = svc.settings.usage_retention_days
    given = request.query_params.get("days", str(DEFAULT_DAYS))
    if not given.isdigit() or not 1 <= int(given) <= most:
        raise errors.invalid(f"`days` must be a whole number from 1 to {most}.", param="days")
    return int(given)


async def _existing(svc: Services, key_id: str) -> ApiKey:
    record = await svc.keys.get(key_id)
    if record is None:
        raise _no_such_key(key_id)
    return record


def _no_such_key(key_id: str) -> errors.ApiError:
    return errors.ApiError(404, f"No key with id `{key_id}`.", code="key_not_found")


def _row(row: UsageRow, named: dict[str, ApiKey]) -> dict[str, Any]:
    record = named.get(row.key_id)
    name = record.name if record is not None else None
    if row.key_id == ANONYMOUS:
        name = "(no key: open bridge)"
    return {
        "day": row.day,
        "key_id": row.key_id,
        "key_name": name,
        "model": row.model,
        "requests": row.requests,
        "errors": row.errors,
        "prompt_tokens": row.prompt_tokens,
        "completion_tokens": row.completion_tokens,
    }
