"""How other commands on this machine ask a running `lmarena-bridge up` for more.

`up` listens on a unix socket in its state dir, readable by its user alone (`accounts add` asks
it for one more worker there). One JSON line asks, one JSON line answers. Nobody listening (no
`up`, or one that was killed and left its socket behind) is `NotRunning`.
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

#: The socket's name in the state dir.
SOCKET = "up.sock"
#: Longest a request or its answer may take on the socket.
EXCHANGE_TIMEOUT_S = 10.0
_LONGEST_LINE = 4096

Handler = Callable[[dict[str, Any]], dict[str, Any]]


class NotRunning(Exception):
    """No `up` answers in that state dir."""


@contextlib.contextmanager
def listening(state_dir: Path) -> Iterator[socket.socket]:
    """The control socket, for as long as `up` runs; only this user may connect."""
    path = state_dir / SOCKET
    path.unlink(missing_ok=True)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_mask = os.umask(0o177)  # created 0600: no moment where others may connect
    try:
        server.bind(str(path))
    finally:
        os.umask(old_mask)
    server.listen()
    try:
        yield server
    finally:
        server.close()
        path.unlink(missing_ok=True)


def serve(server: socket.socket, timeout_s: float, handle: Handler) -> None:
    """Answer the requests that come within `timeout_s` (at least waits that long for one)."""
    readable, _, _ = select.select([server], [], [], timeout_s)
    if not readable:
        return
    connection, _ = server.accept()
    with connection:
        connection.settimeout(EXCHANGE_TIMEOUT_S)
        try:
            request = orjson.loads(_read_line(connection))
            reply = handle(request) if isinstance(request, dict) else {"error": "not a request"}
        except (OSError, orjson.JSONDecodeError) as exc:
            reply = {"error": f"unreadable request ({exc})"}
        with contextlib.suppress(OSError):
            connection.sendall(orjson.dumps(reply) + b"\n")


def ask(state_dir: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Send one request to the `up` of `state_dir`; its answer."""
    path = state_dir / SOCKET
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
        client.settimeout(EXCHANGE_TIMEOUT_S)
        try:
            client.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError):
            raise NotRunning(
                f"no `lmarena-bridge up` runs with the state dir {state_dir}"
            ) from None
        client.sendall(orjson.dumps(request) + b"\n")
        reply = orjson.loads(_read_line(client))
    if not isinstance(reply, dict):
        raise OSError("`up` answered something else than a reply")
    return reply


def _read_line(connection: socket.socket) -> bytes:
    data = b""
    while not data.endswith(b"\n") and len(data) < _LONGEST_LINE:
        chunk = connection.recv(_LONGEST_LINE)
        if not chunk:
            break
        data += chunk
    return data
