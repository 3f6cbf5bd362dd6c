"""A gateway's drain: on SIGTERM it stops taking requests and lets the answers under way end.

`/readyz` says 503 at once, so that load balancers send nothing new; a request that comes anyway
gets a 503 (the client tries another gateway). Answers under way go on until they end or
`LMB_DRAIN_SECONDS` pass; streams still open then are cut without cancelling their jobs, so
that their clients read on from another gateway (`GET /v1/answers/{id}/events` with
`Last-Event-ID`).
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

from gateway.http import errors

#: Paths still served while draining: health, for the orchestrator; metrics, for the operator.
_SERVED = frozenset({"/healthz", "/readyz", "/metrics"})


class Drain:
    """Whether the gateway drains, and the requests it still serves."""

    def __init__(self) -> None:
        self.draining = False
        #: Drain time is over: streams still open are cut, their jobs left running.
        self.cutting = False
        self.active = 0

    def begin(self) -> None:
        self.draining = True


class DrainGate:
    """ASGI middleware: counts the requests served, refuses new ones while draining."""

    def __init__(self, app: ASGIApp, drain: Drain) -> None:
        self._app = app
        self._drain = drain

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in _SERVED:
            await self._app(scope, receive, send)
            return
        if self._drain.draining:
            refusal = errors.unavailable(
                "This gateway is shutting down; send the request again (to another gateway).",
                code="draining",
            )
            refusal.headers.update({"Retry-After": "1", "Connection": "close"})
            await refusal.response(errors.shape_for(scope["path"]))(scope, receive, send)
            return
        self._drain.active += 1
        try:
            await self._app(scope, receive, send)
        finally:
            self._drain.active -= 1
