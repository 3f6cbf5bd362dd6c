"""Liveness and readiness, for load balancers and orchestrators.

Readiness is this gateway's own: it reaches Redis and is not draining. Whether any worker serves
is the fleet's state, shown in the body (and on the admin page) but never a reason to be taken
out of a load balancer: every gateway would leave it at once when all accounts wait for a
person, and the admin page where a person would help them with it.
"""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from redis.exceptions import RedisError

from gateway.fleet.heartbeats import describe_unready, read_fleet, state_counts

router = APIRouter()

#: Within the chart's readiness probe timeout (3 s).
_REDIS_WAIT_S = 2.0


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process answers."""
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Redis answers (503 if not) and the gateway is not draining; the body also tells how many
    workers serve."""
    if request.app.state.drain.draining:
        return JSONResponse({"status": "draining"}, status_code=503)
    redis = request.app.state.services.redis
    try:
        # Within a probe's time: the client would go on retrying, for a failover's sake.
        async with asyncio.timeout(_REDIS_WAIT_S):
            await redis.ping()
            fleet = await read_fleet(redis)
    except TimeoutError:
        reason = f"redis: no answer within {_REDIS_WAIT_S:g} s"
        return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
    except (RedisError, OSError) as exc:
        return JSONResponse({"status": "unavailable", "reason": f"redis: {exc}"}, status_code=503)
    serving = sum(s.serving for s in fleet)
    body = {"status": "ready", "redis": "ok", "workers": state_counts(fleet), "serving": serving}
    if not serving:
        body["fleet"] = describe_unready(fleet)
    return JSONResponse(body)
