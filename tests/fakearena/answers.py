"""Small response builders shared by the fake's endpoints."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import Response


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
