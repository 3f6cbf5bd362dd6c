"""An account's own proxy: Chromium reaches the arena through it, credentials and all.

Chromium takes a proxy's address but not its credentials (and cannot authenticate to a SOCKS5
proxy at all), so a worker given `LMB_PROXY` runs this forwarder on loopback. Chromium proxies
through it in plain HTTP; it opens every connection through the account's proxy with the
credentials (python-socks: HTTP CONNECT, SOCKS4, SOCKS5). The credentials never reach Chromium,
a command line or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Self
from urllib.parse import urlsplit

from pydantic import SecretStr
from python_socks import ProxyError, ProxyTimeoutError
from python_socks.async_.asyncio import Proxy

logger = logging.getLogger(__name__)

#: The longest request head a browser sends a proxy (its request line and headers).
_HEAD_LIMIT = 64 * 1024
_CONNECT_TIMEOUT_S = 20.0
_HEAD_TIMEOUT_S = 30.0
_CHUNK = 64 * 1024
#: Request headers meant for the proxy itself: never passed on to the site.
_PROXY_HEADERS = (b"proxy-connection", b"proxy-authorization", b"connection", b"keep-alive")


def shown(url: str) -> str:
    """The proxy's URL without its credentials, for logs and the admin page."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}" + (f":{parts.port}" if parts.port else "")


def origin_form(head: bytes) -> tuple[str, int, bytes]:
    """A plain-HTTP request to a proxy (`GET http://host/path`) as the site must see it.

    Returns the site's host and port and the head to send it: origin-form request line, the
    proxy's own headers left out, and `Connection: close` (the tunnel goes to this one site).
    """
    request_line, *headers = head.split(b"\r\n")
    method, target, version = request_line.split(b" ", 2)
    url = urlsplit(target.decode("latin-1"))
    if url.scheme != "http" or not url.hostname:
        raise ValueError(f"not an absolute http URL: {target[:100]!r}")
    path = url.path or "/"
    if url.query:
        path += "?" + url.query
    kept = [h for h in headers if h and h.split(b":", 1)[0].strip().lower() not in _PROXY_HEADERS]
    lines = [b" ".join([method, path.encode("latin-1"), version]), *kept, b"Connection: close"]
    return url.hostname, url.port or 80, b"\r\n".join(lines) + b"\r\n\r\n"


def connect_target(head: bytes) -> tuple[str, int]:
    """Where a `CONNECT host:port` request asks to go."""
    target = head.split(b"\r\n", 1)[0].split(b" ")[1].decode("latin-1")
    host, _, port = target.rpartition(":")
    return host.strip("[]"), int(port)


@contextlib.asynccontextmanager
async def forwarding(upstream: SecretStr | None) -> AsyncIterator[str | None]:
    """A forwarder to `upstream` while the block runs: its `host:port` (None: no proxy)."""
    if upstream is None:
        yield None
        return
    forwarder = await ProxyForwarder.start(upstream.get_secret_value())
    try:
        yield forwarder.address
    finally:
        await forwarder.close()


class ProxyForwarder:
    """A loopback HTTP proxy that forwards every connection through `upstream`."""

    def __init__(self, upstream: str) -> None:
        self._upstream = upstream
        self._server: asyncio.Server | None = None
        #: The browser's open connections, closed with the forwarder.
        self._clients: set[asyncio.StreamWriter] = set()

    @classmethod
    async def start(cls, upstream: str) -> Self:
        Proxy.from_url(upstream)  # refuses an unknown scheme or a malformed URL now
        forwarder = cls(upstream)
        forwarder._server = await asyncio.start_server(
            forwarder._serve, "127.0.0.1", 0, limit=_HEAD_LIMIT
        )
        logger.info("proxying the browser through %s", shown(upstream))
        return forwarder

    @property
    def address(self) -> str:
        """`host:port` for Chromium's `--proxy-server`."""
        assert self._server is not None
        host, port = self._server.sockets[0].getsockname()[:2]
        return f"{host}:{port}"

    async def close(self) -> None:
        if self._server is None:
            return
        self._server.close()
        # Cut the open tunnels: their handlers then see the end and finish on their own.
        for client in list(self._clients):
            client.transport.abort()
        await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            await self._forward(reader, writer)
        finally:
            self._clients.discard(writer)
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(_HEAD_TIMEOUT_S):
                head = await reader.readuntil(b"\r\n\r\n")
            connect = head.startswith(b"CONNECT ")
            host, port, first = (*connect_target(head), b"") if connect else origin_form(head)
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError):
            return
        except (ValueError, IndexError):
            writer.write(b"HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n")
            return
        try:
            sock = await Proxy.from_url(self._upstream).connect(
                host, port, timeout=_CONNECT_TIMEOUT_S
            )
            site_reader, site_writer = await asyncio.open_connection(sock=sock, limit=_CHUNK)
        except (ProxyError, ProxyTimeoutError, OSError) as exc:
            # python-socks words its errors without the proxy's credentials.
            logger.warning("the proxy %s refused %s:%d: %s", shown(self._upstream), host, port, exc)
            writer.write(b"HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\n")
            return
        if connect:
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            site_writer.write(first)
        try:
            await _splice(reader, writer, site_reader, site_writer)
        finally:
            site_writer.close()
            with contextlib.suppress(OSError):
                await site_writer.wait_closed()


async def _splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
) -> None:
    """Bytes both ways until either side is done."""

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(OSError):
            while chunk := await reader.read(_CHUNK):
                writer.write(chunk)
                await writer.drain()
            if writer.can_write_eof():
                writer.write_eof()

    ways = [
        asyncio.create_task(pipe(a_reader, b_writer)),
        asyncio.create_task(pipe(b_reader, a_writer)),
    ]
    try:
        await asyncio.wait(ways, return_when=asyncio.ALL_COMPLETED)
    finally:
        for way in ways:
            way.cancel()
        await asyncio.gather(*ways, return_exceptions=True)
