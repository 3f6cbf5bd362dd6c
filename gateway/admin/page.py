"""The admin page: the workers and their states, a way into each one's screen, the queue, models.

`GET /admin` (HTML) and `GET /admin/api/workers` (JSON) show the same picture. People sign in on
`/admin/login` with the admin key (see `gateway.admin.sign_in`); every form that changes anything
carries the session's CSRF token. Other admin sections (client keys, usage) plug into the page
through its `keys` template block (`templates/admin_keys.html`) and the JSON API under
`/admin/api/`, which accepts the same session with the token in `X-CSRF-Token`.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import Awaitable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from redis.asyncio import Redis

from gateway.admin import sign_in
from gateway.admin.sign_in import AdminSession, require_admin, signed_in_admin
from gateway.fleet.catalog_view import CatalogView
from gateway.http.services import Services, services
from shared.fleet.account_pacing import AccountPacer, Pace, Standing, paced_as
from shared.fleet.worker_status import WorkerState, WorkerStatus, read_roster
from shared.storage import redis_keys

router = APIRouter(prefix="/admin", include_in_schema=False)
templates = Jinja2Templates(directory=Path(__file__).parent / "templates")


def from_now(when: float | None, now: float) -> str:
    """A time to come, as a person reads it: "now", "in 40 s", "in 18 min", "at 14:05"."""
    if when is None:
        return ""
    left = when - now
    if left < 1:
        return "now"
    if left < 90:
        return f"in {left:.0f} s"
    if left < 90 * 60:
        return f"in {left / 60:.0f} min"
    return "at " + time.strftime("%H:%M", time.localtime(when))


templates.env.filters["from_now"] = from_now

#: States in which a worker waits for a person to act (in its browser, or on what stands between
#: it and the arena), and what to do.
WHAT_TO_DO = {
    WorkerState.CHALLENGE: "pass the Cloudflare check in its browser",
    WorkerState.LOGIN_REQUIRED: "sign in to an arena account in its browser",
    WorkerState.FLAGGED: "the arena flagged its account: pass the site's “Security Verification”"
    " in its browser (else it tries alone after a pause)",
    WorkerState.UNREACHABLE: "find out why it cannot reach the arena: run `lmarena-bridge doctor`",
    WorkerState.UNRECOGNISED: "the arena has changed: run `lmarena-bridge doctor` to see what",
}


@dataclass(frozen=True, slots=True)
class WorkerRow:
    id: str
    state: str
    gone: bool
    account: str | None = None
    busy: int = 0
    capacity: int = 0
    last_error: str | None = None
    heartbeat_age_s: float | None = None
    models: int = 0
    queued: int = 0
    #: A person can open its screen (it has a display, with a password the gateway can derive).
    screen: bool = False
    #: What a person must do, if anything.
    needs: str | None = None
    #: Why it is in its state, in one line (naming the doctor's check it fails, if one).
    reason: str | None = None
    #: The doctor's check it fails, if it cannot serve for one.
    check: str | None = None
    #: When it tries the arena (or a browser) again by itself.
    retry_in_s: float | None = None
    #: Where it read the catalog: `endpoint` (the catalog endpoint) or `page`.
    catalog_source: str | None = None
    #: The mode the arena took for its last new chat.
    chat_mode: str | None = None
    #: Unix time its account's state ends: cooling over, or a flagged account's call alone.
    until: float | None = None
    #: Unix time its account may make its next call (its pacing, its cooling); None: not while
    #: it waits for a person or for the arena.
    free_at: float | None = None
    #: Its account's calls in the last 15 minutes and today (UTC), against its budget (0: none).
    calls_15_minutes: int = 0
    calls_today: int = 0
    budget_15_minutes: int = 0
    budget_today: int = 0
    #: The account's credits, when the site shows them.
    credits: float | None = None
    #: The address the arena sees it come from (when probed), and its own proxy (no password).
    egress: str | None = None
    proxy: str | None = None


def state_ends(status: WorkerStatus) -> float | None:
    """When the account's state ends by itself: its cooling, or a flagged one's call alone."""
    if status.state is WorkerState.COOLING:
        return status.until
    if status.state is WorkerState.FLAGGED:
        return status.next_try
    return None


def free_at(status: WorkerStatus, standing: Standing | None, now: float) -> float | None:
    """When the account may take a job (its pacing as read just now, and any cooling); None
    while it waits for a person or for the arena."""
    free_in = status.free_in(now, paced_s=standing.wait_s if standing else 0.0)
    return None if free_in is None else now + free_in


def worker_rows(
    live: list[WorkerStatus],
    gone: list[str],
    queued: dict[str, int],
    now: float,
    standings: Mapping[str, Standing] | None = None,
    pace: Pace = Pace(),
) -> list[WorkerRow]:
    """The workers as the page shows them: those that need a person first, gone ones last;
    `standings`: each live one's account against its budget, by worker id."""
    standings = standings or {}
    rows = [
        WorkerRow(
            id=s.id,
            state=s.state.value,
            gone=False,
            account=s.account,
            busy=s.busy,
            capacity=s.capacity,
            last_error=s.last_error,
            heartbeat_age_s=max(0.0, now - s.updated_at),
            models=len(s.models),
            queued=queued.get(s.queue, 0),
            screen=bool(s.novnc_url and s.vnc_salt),
            needs=WHAT_TO_DO.get(s.state),
            reason=None if s.serving else s.reason,
            check=s.check,
            retry_in_s=max(0.0, s.next_try - now) if s.next_try is not None else None,
            catalog_source=s.catalog_source,
            chat_mode=s.chat_mode,
            until=state_ends(s),
            free_at=free_at(s, standings.get(s.id), now),
            calls_15_minutes=standing.calls_last_15_minutes if standing else 0,
            calls_today=standing.calls_today if standing else 0,
            budget_15_minutes=pace.per_15_minutes,
            budget_today=pace.per_day,
            credits=s.credits,
            egress=s.egress,
            proxy=s.proxy,
        )
        for s in live
        for standing in [standings.get(s.id)]
    ]
    rows += [
        WorkerRow(
            id=worker_id,
            state="gone",
            gone=True,
            queued=queued.get(redis_keys.worker_queue(worker_id), 0),
        )
        for worker_id in gone
    ]
    return sorted(rows, key=lambda row: (row.needs is None, row.gone, row.id))


@dataclass(frozen=True, slots=True)
class Overview:
    workers: list[WorkerRow]
    #: Jobs waiting in the shared queue (any worker takes them).
    queued: int
    #: Public names of the models the live workers serve, listed ones only.
    models: list[str]
    #: When it was read (Unix time): the page says "in 3 min" from it.
    now: float

    def public(self) -> dict[str, Any]:
        return {
            "workers": [asdict(row) for row in self.workers],
            "queued": self.queued,
            "models": self.models,
        }


async def overview(redis: Redis, catalogs: CatalogView, pace: Pace) -> Overview:
    live, gone = await read_roster(redis)
    pacer = AccountPacer(redis, pace)
    standings = await asyncio.gather(*(pacer.standing(paced_as(s.account, s.id)) for s in live))
    # The models of exactly the workers shown, not of a view a moment older.
    catalog = await catalogs.update(live)
    queues = [
        redis_keys.SHARED_QUEUE,
        *(redis_keys.worker_queue(s.id) for s in live),
        *map(redis_keys.worker_queue, gone),
    ]
    async with redis.pipeline(transaction=False) as pipe:
        for name in queues:
            pipe.zcard(name)  # arq queues are sorted sets of job ids
        depths = dict(zip(queues, await pipe.execute(), strict=True))
    models = [model.public_name for model in catalog.listed()] if catalog else []
    now = time.time()
    by_worker = {s.id: standing for s, standing in zip(live, standings, strict=True)}
    rows = worker_rows(live, gone, depths, now, by_worker, pace)
    return Overview(rows, depths[redis_keys.SHARED_QUEUE], models, now)


def page(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    """An admin HTML page: never cached, never framed, scripts only with this answer's nonce."""
    nonce = secrets.token_urlsafe(16)
    response = templates.TemplateResponse(
        request, template, {**context, "nonce": nonce}, status_code=status_code
    )
    response.headers.update(
        {
            "Cache-Control": "no-store",
            "Content-Security-Policy": (
                f"default-src 'self'; script-src 'self' 'nonce-{nonce}'; style-src 'self' 'nonce-{nonce}';"
                " img-src 'self' data: blob:; connect-src 'self'; frame-ancestors 'none';"
                " form-action 'self'; base-uri 'none'; object-src 'none'"
            ),
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "X-Frame-Options": "DENY",
        }
    )
    return response


def to_login(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(f"{sign_in.LOGIN_PATH}?next={quote(target, safe='/')}", status_code=303)


def disabled(request: Request) -> Response:
    return page(
        request,
        "message.html",
        {
            "title": "Admin disabled",
            "message": "The admin page is disabled: set LMB_ADMIN_KEY to enable it.",
        },
        status_code=403,
    )


@router.get("")
async def dashboard(request: Request, svc: Services = Depends(services)) -> Response:
    if not sign_in.admin_enabled(request):
        return disabled(request)
    session = await signed_in_admin(request)
    if session is None:
        return to_login(request)
    view = await overview(svc.redis, svc.catalog, Pace.of(svc.settings))
    return page(request, "admin.html", {"view": view, "csrf_token": session.csrf_token})


@router.get("/api/workers")
async def workers_api(
    _: AdminSession = Depends(require_admin), svc: Services = Depends(services)
) -> dict[str, Any]:
    return (await overview(svc.redis, svc.catalog, Pace.of(svc.settings))).public()


@router.post("/workers/{worker_id}/forget")
async def forget(
    worker_id: str, _: AdminSession = Depends(require_admin), svc: Services = Depends(services)
) -> Response:
    """Take a gone worker off the page (a live one would only come back with its next beat)."""
    if not await svc.redis.exists(redis_keys.worker_heartbeat(worker_id)):
        await cast(Awaitable[int], svc.redis.srem(redis_keys.WORKERS, worker_id))
    return RedirectResponse("/admin", status_code=303)


@router.get("/login")
async def login_form(request: Request, next: str | None = None) -> Response:
    if not sign_in.admin_enabled(request):
        return disabled(request)
    if await signed_in_admin(request) is not None:
        return RedirectResponse(sign_in.safe_next(next), status_code=303)
    return _login_page(request, next, error=None, status_code=200)


@router.post("/login")
async def login(request: Request, svc: Services = Depends(services)) -> Response:
    if not sign_in.admin_enabled(request):
        return disabled(request)
    form = await request.form()
    target = sign_in.safe_next(_field(form.get("next")))
    if not sign_in.login_form_valid(request, _field(form.get("login_token"))):
        return _login_page(request, target, error="The form expired: try again.", status_code=403)
    if wait := await svc.throttle.wait_s(request):
        refused = _login_page(
            request,
            target,
            error=f"Too many failed sign-ins from your address: try again in {wait} s.",
            status_code=429,
        )
        refused.headers["Retry-After"] = str(wait)
        return refused
    if not sign_in.key_is_admin(request, _field(form.get("key")) or ""):
        await svc.throttle.failed(request)
        return _login_page(request, target, error="That is not the admin key.", status_code=401)
    response = RedirectResponse(target, status_code=303)
    sign_in.start_session(request, response)
    return response


@router.post("/logout")
async def logout(request: Request, session: AdminSession = Depends(require_admin)) -> Response:
    response = RedirectResponse(sign_in.LOGIN_PATH, status_code=303)
    await sign_in.end_session(request, response, session)
    return response


def _login_page(
    request: Request, target: str | None, *, error: str | None, status_code: int
) -> Response:
    # The form's token goes in the page and, signed, in a cookie: a forged form has only one.
    token, cookie = sign_in.new_login_form(request)
    context = {"next": sign_in.safe_next(target), "error": error, "login_token": token}
    response = page(request, "login.html", context, status_code=status_code)
    sign_in.set_login_cookie(request, response, cookie)
    return response


def _field(value: Any) -> str | None:
    return value if isinstance(value, str) else None
