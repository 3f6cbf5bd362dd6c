"""A worker's screen through the gateway: the noVNC viewer, its files, and its websocket.

Workers' noVNC (websockify) listens on a private address the heartbeat names; no VNC port is
ever exposed. The gateway goes there only if the operator allowed it (`LMB_NOVNC_ALLOWED`: host
names, addresses, networks), never merely because a heartbeat in Redis says so: a name not
listed must resolve to allowed addresses only, and is then reached at the address checked.
Behind admin authentication the gateway serves:
- `/admin/workers/{id}/screen`: the viewer page, which alone is given the VNC password (derived
  from the admin key and the worker's salt, `shared.credentials.vnc`), never in a URL;
- `/admin/workers/{id}/novnc/{file}`: the noVNC client's modules, relayed from the worker's own
  websockify (which serves `/usr/share/novnc`), so gateways need no copy of their own;
- `/admin/workers/{id}/websockify`: the websocket, relayed frame by frame to the worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import re
import socket

import httpx
import websockets
from fastapi import APIRouter, Depends, Request, WebSocket
from fastapi.responses import Response
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed, InvalidHandshake

from gateway.admin import sign_in
from gateway.admin.page import disabled, page, to_login
from gateway.admin.sign_in import AdminSession, require_admin, signed_in_admin
from gateway.http.errors import ApiError
from gateway.http.services import Services, services
from shared.credentials import vnc
from shared.fleet.worker_status import WorkerStatus
from shared.settings import Settings
from shared.storage import redis_keys

log = logging.getLogger(__name__)

router = APIRouter(prefix="/admin/workers/{worker_id}", include_in_schema=False)

#: The client's ES modules; nothing else of the worker's web root is relayed.
_CLIENT_FILE = re.compile(r"(?:core|vendor)(?:/[A-Za-z0-9_.-]+)+\.js")
_FILE_TIMEOUT_S = 10.0
#: Policy violation: what a websocket without a signed-in admin (or from another site) gets.
_POLICY = 1008
_UNAVAILABLE = 1011


async def _status(svc: Services, worker_id: str) -> WorkerStatus | None:
    beat = await svc.redis.get(redis_keys.worker_heartbeat(worker_id))
    return WorkerStatus.load(beat) if beat else None


def allowed(host: str, addresses: list[str], allowlist: list[str]) -> bool:
    """Whether a screen at `host` (which resolves to `addresses`) may be opened: the name itself
    is listed, or every address it has is in a listed address or network."""
    names = {entry.lower() for entry in allowlist}
    if host.lower() in names:
        return True
    networks = []
    for entry in allowlist:
        with contextlib.suppress(ValueError):
            networks.append(ipaddress.ip_network(entry, strict=False))
    return bool(addresses) and all(
        any(ipaddress.ip_address(a.split("%", 1)[0]) in n for n in networks) for a in addresses
    )


async def screen_url(settings: Settings, status: WorkerStatus) -> str | None:
    """Where to reach `status`'s noVNC, if it has one the operator allowed (else None, logged)."""
    if status.novnc_url is None:
        return None
    url = httpx.URL(status.novnc_url)
    host, port = url.host, url.port or 80
    if host.lower() in {entry.lower() for entry in settings.novnc_allowed}:
        return status.novnc_url
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        log.warning("screen of %s: cannot resolve %s: %s", status.id, host, exc)
        return None
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    if not allowed(host, addresses, settings.novnc_allowed):
        log.warning(
            "screen of %s is at %s (%s), which LMB_NOVNC_ALLOWED does not allow: not opened",
            status.id,
            host,
            ", ".join(addresses),
        )
        return None
    # The address checked is the one connected to: a name cannot resolve elsewhere meanwhile.
    return str(url.copy_with(host=addresses[0]))


def _password(settings: Settings, status: WorkerStatus) -> str | None:
    admin_key = settings.admin_key
    if admin_key is None or status.vnc_salt is None:
        return None
    return vnc.password(admin_key.get_secret_value(), status.id, status.vnc_salt)


@router.get("/screen")
async def screen(request: Request, worker_id: str, svc: Services = Depends(services)) -> Response:
    if not sign_in.admin_enabled(request):
        return disabled(request)
    if await signed_in_admin(request) is None:
        return to_login(request)
    status = await _status(svc, worker_id)
    password = _password(svc.settings, status) if status and status.novnc_url else None
    if status is None or password is None or await screen_url(svc.settings, status) is None:
        reason = (
            "is not running"
            if status is None
            else "has no screen (it runs without a display, or without LMB_ADMIN_KEY)"
            if password is None
            else "has its screen at an address the gateways may not open (LMB_NOVNC_ALLOWED)"
        )
        return page(
            request,
            "message.html",
            {"title": f"{worker_id}: no screen", "message": f"Worker {worker_id} {reason}."},
            status_code=404,
        )
    return page(request, "screen.html", {"worker": status, "password": password})


@router.get("/novnc/{path:path}")
async def client_file(
    worker_id: str,
    path: str,
    _: AdminSession = Depends(require_admin),
    svc: Services = Depends(services),
) -> Response:
    status = await _status(svc, worker_id)
    where = await screen_url(svc.settings, status) if status is not None else None
    if not _CLIENT_FILE.fullmatch(path) or where is None:
        return Response("Not Found", status_code=404, media_type="text/plain")
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=_FILE_TIMEOUT_S) as client:
            upstream = await client.get(f"{where}/{path}")
    except httpx.HTTPError as exc:
        log.warning("noVNC of %s did not answer: %s", worker_id, exc)
        return Response("Bad Gateway", status_code=502, media_type="text/plain")
    if upstream.status_code != 200:
        return Response("Not Found", status_code=404, media_type="text/plain")
    return Response(
        upstream.content,
        media_type="text/javascript",
        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


def _same_origin(websocket: WebSocket) -> bool:
    """A browser's websocket says where its page came from: only our own pages may connect."""
    origin = websocket.headers.get("origin")
    host = websocket.headers.get("host")
    return origin is not None and host is not None and origin.split("://", 1)[-1] == host


@router.websocket("/websockify")
async def websockify(websocket: WebSocket, worker_id: str) -> None:
    try:
        admin = await signed_in_admin(websocket)
    except ApiError:  # throttled
        admin = None
    if admin is None or not _same_origin(websocket):
        await websocket.close(code=_POLICY)
        return
    svc = websocket.app.state.services
    status = await _status(svc, worker_id)
    where = await screen_url(svc.settings, status) if status is not None else None
    if where is None:
        await websocket.close(code=_UNAVAILABLE)
        return
    offered = websocket.scope.get("subprotocols") or []
    target = "ws" + where.removeprefix("http") + "/websockify"
    try:
        upstream = await websockets.connect(
            target,
            subprotocols=offered or None,
            max_size=None,
            compression=None,
            proxy=None,
            open_timeout=10,
        )
    except (OSError, InvalidHandshake, TimeoutError) as exc:
        log.warning("noVNC of %s refused the screen's websocket: %s", worker_id, exc)
        await websocket.close(code=_UNAVAILABLE)
        return
    async with upstream:
        await websocket.accept(subprotocol=upstream.subprotocol)
        log.info("screen of %s opened", worker_id)
        await _relay(websocket, upstream)
    log.info("screen of %s closed", worker_id)


async def _relay(websocket: WebSocket, upstream: ClientConnection) -> None:
    """Frames both ways until either side closes; then the other is closed too."""

    async def down() -> None:
        async for message in upstream:
            if isinstance(message, bytes):
                await websocket.send_bytes(message)
            else:
                await websocket.send_text(message)

    async def up() -> None:
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("bytes") is not None:
                await upstream.send(message["bytes"])
            elif message.get("text") is not None:
                await upstream.send(message["text"])

    tasks = [asyncio.create_task(down()), asyncio.create_task(up())]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        # Already closed by the browser, maybe.
        with contextlib.suppress(RuntimeError, WebSocketDisconnect, ConnectionClosed):
            await websocket.close()
