"""Request and response helpers the fake's endpoints share."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response

from tests.fakearena.state import Arena


def arena_of(request: Request) -> Arena:
    return request.app.state.arena


def origin_of(request: Request) -> str:
    """The origin the caller reached us at: URLs we hand out point back to it."""
    return str(request.base_url).rstrip("/")


async def payload_of(request: Request) -> dict[str, Any]:
    """The request's JSON object body, or an empty one if it is anything else."""
    try:
        payload = orjson.loads(await request.body() or b"{}")
    except orjson.JSONDecodeError:
        return {}
    return payload if isinstance(payload, dict) else {}


def json_answer(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(data), status, headers, media_type="application/json")


def error_answer(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """The site's JSON error shape: `{"error": "<message>"}`."""
    return json_answer({"error": message}, status, headers)


class Refusal(Exception):
    """Raised by a check to answer the request with `response` instead."""

    def __init__(self, response: Response) -> None:
        super().__init__(response.status_code)
        self.response = response
