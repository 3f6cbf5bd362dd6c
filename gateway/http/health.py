"""Liveness and readiness, for load balancers and orchestrators."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from gateway.answers.fleet_view import describe_unready, read_fleet, state_counts

router = APIRouter()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Redis answers, at least one worker is serving, and the gateway is not draining."""
    if request.app.state.drain.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    try:
        fleet = await read_fleet(request.app.state.services.redis)
    except (RedisError, OSError) as exc:
        return JSONResponse({"status": "unavailable", "reason": f"redis: {exc}"}, status_code=503)
    serving = sum(s.serving for s in fleet)
    counts = {"workers": state_counts(fleet), "serving": serving}
    if not serving:
        return JSONResponse(
            {"status": "unavailable", "reason": describe_unready(fleet), **counts}, status_code=503
        )
    return JSONResponse({"status": "ready", **counts})
