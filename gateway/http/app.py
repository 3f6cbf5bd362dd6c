"""The gateway's ASGI app: routes, error bodies, and the Redis clients it holds while running."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from asgi_correlation_id import CorrelationIdMiddleware
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from gateway.access.auth_throttle import AuthThrottle
from gateway.access.client_auth import exposure_problem
from gateway.access.key_limits import Limiter
from gateway.access.usage import UsageStore
from gateway.admin import api as admin_api
from gateway.admin import page as admin_page
from gateway.admin import screens
from gateway.answers.stream_reads import StreamReads
from gateway.apis import answers as answers_routes
from gateway.apis.anthropic import routes as anthropic_routes
from gateway.apis.openai import routes as openai_routes
from gateway.apis.responses import routes as responses_routes
from gateway.fleet.catalog_view import CatalogView
from gateway.fleet.heartbeats import FleetView, keep_fresh
from gateway.fleet.queue_view import QueueView
from gateway.http import errors, health, metrics
from gateway.http.body_limit import BodyLimit
from gateway.http.disconnect import ClientDisconnected
from gateway.http.drain import Drain, DrainGate
from gateway.http.metrics import HttpMetrics, Metrics
from gateway.http.services import Services
from shared.credentials.client_keys import KeyStore
from shared.fleet.recovery import Recovery
from shared.settings import Settings
from shared.storage import redis_client, redis_keys

log = logging.getLogger(__name__)

#: API prefixes: OpenAI's own, and the one clients of older bridges are configured with.
API_PREFIXES = ("/v1", "/api/v1")
#: What clients see when the connection is gone before the answer; nginx's code for it.
_CLIENT_CLOSED = 499


def create_app(settings: Settings) -> FastAPI:
    if not redis_client.configured(settings):
        raise ValueError("the gateway needs a Redis (settings.redis_url or redis_sentinels)")
    if problem := exposure_problem(settings):
        raise ValueError(problem)
    app_metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        redis = redis_client.connect(settings)
        pool = await redis_client.arq_pool(settings, default_queue_name=redis_keys.SHARED_QUEUE)
        catalog = CatalogView(redis)
        fleet = FleetView(redis)
        # Each reader holds its connection for good: no checkout from a pool at every XREAD.
        reads = StreamReads(lambda: redis_client.connect(settings).client(), redis)
        app.state.services = Services(
            settings=settings,
            redis=redis,
            reads=reads,
            pool=pool,
            catalog=catalog,
            fleet=fleet,
            queue=QueueView(redis, fleet, catalog, settings),
            keys=KeyStore(redis),
            limiter=Limiter(redis, lease_s=settings.lease_ttl_seconds),
            usage=UsageStore(redis, retention_days=settings.usage_retention_days),
            metrics=app_metrics,
            throttle=AuthThrottle(
                redis,
                per_address=settings.auth_failures_per_minute,
                total=settings.auth_failures_per_minute_total,
            ),
        )
        # Gateways look for dead workers too: their clients are told even with no worker left.
        recovery = Recovery.of(pool, settings)
        background = [
            asyncio.create_task(keep_fresh(fleet, catalog)),
            asyncio.create_task(recovery.run()),
        ]
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            await reads.close()
            await pool.aclose()
            await redis.aclose()

    app = FastAPI(
        title="lmarena-bridge",
        summary="OpenAI-compatible API for the models on LMArena",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.drain = drain = Drain()
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(DrainGate, drain=drain)
    app.add_middleware(HttpMetrics, metrics=app_metrics)
    # Outermost: every log line of a request carries its id (also sent back as X-Request-ID).
    app.add_middleware(CorrelationIdMiddleware)
    app.add_exception_handler(errors.ApiError, _api_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(ClientDisconnected, _client_disconnected)
    app.add_exception_handler(Exception, _unexpected)
    for prefix in API_PREFIXES:
        app.include_router(openai_routes.router, prefix=prefix)
        app.include_router(responses_routes.router, prefix=prefix)
        app.include_router(responses_routes.websockets, prefix=prefix)
        app.include_router(anthropic_routes.router, prefix=prefix)
        app.include_router(answers_routes.router, prefix=prefix)
    app.include_router(health.router)
    app.include_router(admin_page.router)
    app.include_router(admin_api.router)
    app.include_router(screens.router)
    app.include_router(metrics.router)
    return app


async def _api_error(request: Request, exc: Exception) -> Response:
    """Any ApiError, in the error shape of the API its route belongs to."""
    assert isinstance(exc, errors.ApiError)
    return exc.response(errors.shape_for(request.url.path))


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing failures (404, 405) in the body of the API the path is under."""
    assert isinstance(exc, HTTPException)
    target = f"{request.method} {request.url.path}"
    if exc.status_code == 404:
        message = f"Invalid URL ({target})"
    elif exc.status_code == 405:
        message = f"Invalid method for URL ({target})"
    else:
        message = str(exc.detail)
    error = errors.ApiError(exc.status_code, message, headers=exc.headers)
    return error.response(errors.shape_for(request.url.path))


async def _client_disconnected(request: Request, exc: Exception) -> Response:
    log.info("%s %s: client went away before the answer", request.method, request.url.path)
    return Response(status_code=_CLIENT_CLOSED)


async def _unexpected(request: Request, exc: Exception) -> Response:
    # Starlette re-raises after answering, so the server logs the traceback.
    return errors.ApiError(
        500, "The server had an error while processing your request.", code="internal"
    ).response(errors.shape_for(request.url.path))
