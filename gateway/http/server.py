"""`lmarena-bridge gateway`: the app under uvicorn, drained on SIGTERM (see gateway.http.drain)."""

from __future__ import annotations

import logging
import signal
import time
from types import FrameType

import uvicorn
from fastapi import FastAPI

from gateway.http.app import create_app
from gateway.http.drain import Drain
from shared.settings import Settings

log = logging.getLogger(__name__)

#: Once drained, what is left (a stream cut at the end of the drain) gets this long to close.
_GRACEFUL_SHUTDOWN_S = 1


class DrainingServer(uvicorn.Server):
    """uvicorn's server, which on SIGTERM drains before it stops; SIGINT stops it at once."""

    def __init__(self, config: uvicorn.Config, drain: Drain, drain_s: float) -> None:
        super().__init__(config)
        self._drain = drain
        self._drain_s = drain_s
        self._drained_at = float("inf")

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if sig != signal.SIGTERM or self._drain.draining:
            super().handle_exit(sig, frame)
            return
        log.info("draining: no new requests; the answers under way have %g s", self._drain_s)
        self._drain.begin()
        self._drained_at = time.monotonic() + self._drain_s

    async def on_tick(self, counter: int) -> bool:
        if self._drain.draining and not self.should_exit:
            over = time.monotonic() >= self._drained_at
            if over or not self._drain.active:
                if over:
                    log.info(
                        "drain time over: %d answers left to other gateways", self._drain.active
                    )
                self._drain.cutting = over
                self.should_exit = True
        return await super().on_tick(counter)


def config(settings: Settings, app: FastAPI, **overrides: object) -> uvicorn.Config:
    """uvicorn's configuration of a gateway's `app`: its address, and the proxies it believes.

    X-Forwarded-For and X-Forwarded-Proto are read only from `LMB_TRUSTED_PROXIES` (none by
    default, not uvicorn's loopback default), so that behind TLS termination the admin cookie is
    `Secure` and logs and throttles see the client's address, and nobody else can claim either.
    """
    options: dict[str, object] = {
        "host": settings.host,
        "port": settings.port,
        "proxy_headers": bool(settings.trusted_proxies),
        "forwarded_allow_ips": settings.trusted_proxies,
        # Logging is configured by the command line, once for every process it starts.
        "log_config": None,
        "timeout_graceful_shutdown": _GRACEFUL_SHUTDOWN_S,
    }
    return uvicorn.Config(app, **{**options, **overrides})  # type: ignore[arg-type]


def serve(settings: Settings) -> None:
    """Serve the gateway on `settings.host:settings.port` until stopped."""
    app = create_app(settings)
    DrainingServer(config(settings, app), app.state.drain, settings.drain_seconds).run()
