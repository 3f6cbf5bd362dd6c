"""`GET /answers/{id}/events`: a streamed answer read again, on any gateway.

A client whose stream broke off (its gateway stopped, the network failed) reconnects here with
the last `id:` it got in `Last-Event-ID` and reads on from there: the same frames, of the API it
asked, none twice, none missing. The answer is not asked of the arena again: the job goes on on
its worker, and its events wait in Redis (`LMB_EVENTS_TTL_SECONDS` after it ends).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.types import Message

from gateway.access.caller import caller
from gateway.access.client_auth import require_key
from gateway.answers import resume
from gateway.apis.anthropic import routes as anthropic_routes
from gateway.apis.openai import routes as openai_routes
from gateway.apis.responses import routes as responses_routes
from gateway.http.errors import ApiError
from gateway.http.services import Services, services

router = APIRouter(dependencies=[Depends(require_key)])

Endpoint = Callable[[Request, Services], Awaitable[Response]]

#: The routes whose streams can be read again, by the end of their path (under either prefix).
_ENDPOINTS: dict[str, Endpoint] = {
    "/chat/completions": openai_routes.chat_completions,
    "/messages": anthropic_routes.create_message,
    "/responses": responses_routes.create_response,
}


@router.get("/answers/{job_id}/events")
async def answer_events(
    job_id: str, request: Request, svc: Services = Depends(services)
) -> Response:
    found = await resume.kept(svc.redis, job_id, caller(request).key_id)
    endpoint = _endpoint(found.route) if found is not None else None
    if found is None or found.body is None or endpoint is None:
        raise ApiError(
            404,
            f"No streamed answer `{job_id}` for this key (it may have expired).",
            param="id",
            code="answer_not_found",
        )
    # The route renders its frames from the request that asked for them, as it did then.
    asked = _asked(request, found.route, found.body)
    resume.read_again(asked, found.job)
    return await endpoint(asked, svc)


def _endpoint(route: str) -> Endpoint | None:
    return next((e for end, e in _ENDPOINTS.items() if route.endswith(end)), None)


def _asked(request: Request, route: str, body: bytes) -> Request:
    """The request that asked for the answer, as its route reads it, on this connection."""
    given = False

    async def receive() -> Message:
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await request.receive()  # the client going away

    return Request({**request.scope, "method": "POST", "path": route}, receive)
