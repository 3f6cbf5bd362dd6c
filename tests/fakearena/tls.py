"""HTTPS with HTTP/2 for the fake, from a throwaway test CA.

The real site speaks HTTP/2 (and 3); over HTTP/1.1 a browser opens at most six connections to
one host, which would cap how many answers one worker can stream at once.
"""

from __future__ import annotations

from pathlib import Path

import trustme
from hypercorn.asyncio import serve
from hypercorn.config import Config
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def make_certificates(directory: Path, host: str) -> tuple[Path, Path]:
    """A CA (written to `ca.pem`) and a certificate for `host` signed by it; returns cert, key."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA()
    server = ca.issue_cert(host, "127.0.0.1", "localhost")
    ca.cert_pem.write_to_path(str(directory / "ca.pem"))
    cert, key = directory / "server.pem", directory / "server.key"
    server.cert_chain_pems[0].write_to_path(str(cert))
    server.private_key_pem.write_to_path(str(key))
    return cert, key


class BodyFirst:
    """Hand the app a request only once its whole body has arrived.

    hypercorn's HTTP/2 drops the connection when a response ends before the request body does
    (pgjones/hypercorn#334, unfixed in 0.18); endpoints that ignore their body trigger it.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        buffered: list[Message] = []
        while True:
            message = await receive()
            buffered.append(message)
            if message["type"] != "http.request" or not message.get("more_body"):
                break

        async def replay() -> Message:
            return buffered.pop(0) if buffered else await receive()

        await self.app(scope, replay, send)


async def serve_tls(app: ASGIApp, host: str, port: int, directory: Path) -> None:
    cert, key = make_certificates(directory, host)
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.certfile, config.keyfile = str(cert), str(key)
    config.alpn_protocols = ["h2", "http/1.1"]
    config.loglevel = "WARNING"
    config.accesslog = None
    await serve(BodyFirst(app), config)
