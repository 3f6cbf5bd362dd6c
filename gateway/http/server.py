"""`lmarena-bridge gateway`: the app under uvicorn."""

from __future__ import annotations

import uvicorn

from gateway.http.app import create_app
from shared.settings import Settings

#: Streams still open at shutdown are cut after this long (their jobs are then cancelled).
_GRACEFUL_SHUTDOWN_S = 10


def serve(settings: Settings) -> None:
    """Serve the gateway on `settings.host:settings.port` until interrupted."""
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        # Logging is configured by the command line, once for every process it starts.
        log_config=None,
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )
