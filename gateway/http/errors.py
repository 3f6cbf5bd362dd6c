"""Each API's error body, the exception that carries it, and how failures map to statuses.

One `ApiError` is rendered in the shape of the API its route belongs to: Anthropic's for the
Messages routes, OpenAI's everywhere else.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails
from starlette.responses import Response

from shared.events import Event

#: A worker's error kind → the status a client gets when it is known before the first byte.
STATUS_BY_KIND: Mapping[str, int] = {
    "rate_limited": 429,
    "auth": 503,
    "challenge": 503,
    "no_worker": 503,
    "bad_request": 400,
    "timeout": 504,
}
#: Anything not listed above (upstream, worker_lost, recaptcha, internal) is the
#: arena's or the fleet's failure, not the client's.
DEFAULT_STATUS = 502

Shape = Literal["openai", "anthropic"]

#: Anthropic's routes, under either API prefix (see `gateway.http.app.API_PREFIXES`).
_ANTHROPIC_PATH = re.compile(r"^(?:/api)?/v1/messages(?:/|$)")
#: Anthropic's error `type` for each status the bridge answers with.
_ANTHROPIC_TYPES: Mapping[int, str] = {
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
    504: "timeout_error",
    529: "overloaded_error",
}


class ApiError(Exception):
    """A failure answered with a real status and OpenAI's error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type_: str | None = None,
        param: str | None = None,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type_ or error_type(status)
        self.param = param
        self.code = code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """OpenAI's error body."""
        return error_body(self.message, self.type, self.param, self.code)

    def anthropic_body(self) -> dict[str, Any]:
        """Anthropic's error body."""
        return {
            "type": "error",
            "error": {"type": anthropic_type(self.status), "message": self.message},
        }

    def response(self, shape: Shape = "openai") -> Response:
        body = self.anthropic_body() if shape == "anthropic" else self.body()
        return Response(
            orjson.dumps(body),
            status_code=self.status,
            headers=self.headers,
            media_type="application/json",
        )


def shape_for(path: str) -> Shape:
    """The error shape of the API that the route at `path` belongs to."""
    return "anthropic" if _ANTHROPIC_PATH.match(path) else "openai"


def anthropic_type(status: int) -> str:
    """Anthropic's error `type` for a status: its own values, which its SDK and clients know."""
    if status in _ANTHROPIC_TYPES:
        return _ANTHROPIC_TYPES[status]
    if status >= 500:
        return "api_error"
    return "invalid_request_error"


def error_body(message: str, type_: str, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def error_type(status: int) -> str:
    """OpenAI's `type` for a status: its own values, so that clients that branch on them work."""
    if status == 429:
        return "requests"
    if status >= 500:
        return "server_error"
    return "invalid_request_error"


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> ApiError:
    """The request cannot be read as asked (400)."""
    return ApiError(400, message, param=param, code=code)


def unprocessable(message: str, *, param: str | None = None) -> ApiError:
    """The request is well-formed but asks for something the bridge cannot do (422)."""
    return ApiError(422, message, param=param, code="unsupported")


def unavailable(message: str, *, code: str) -> ApiError:
    return ApiError(503, message, code=code)


def model_not_found(name: str) -> ApiError:
    return ApiError(
        404,
        f"The model `{name}` does not exist or you do not have access to it.",
        param="model",
        code="model_not_found",
    )


def from_event(event: Event) -> ApiError:
    """The status and body for a worker's `error` event."""
    kind = event.get("kind") or "internal"
    status = STATUS_BY_KIND.get(kind, DEFAULT_STATUS)
    headers = {}
    retry_after = event.get("retry_after")
    if status in (429, 503) and retry_after is not None:
        headers["Retry-After"] = str(max(0, math.ceil(retry_after)))
    code = "rate_limit_exceeded" if status == 429 else kind
    return ApiError(status, event.get("message") or kind, code=code, headers=headers)


def json_object(raw: bytes) -> dict[str, Any]:
    """The JSON object a request body holds, or a 400 that says why there is none."""
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise invalid(
            f"We could not parse the JSON body of your request: {exc}. "
            "The API expects a JSON object."
        ) from None
    if not isinstance(data, dict):
        raise invalid("The request body must be a JSON object.")
    return data


Body = TypeVar("Body", bound=BaseModel)


def parse_body(raw: bytes, model: type[Body]) -> Body:
    """The request body in `raw` as `model`, or a 400 in OpenAI's words naming what is wrong."""
    data = json_object(raw)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, data) from None


def from_validation(exc: ValidationError, data: Any) -> ApiError:
    """A 400 naming the parameter that failed, in OpenAI's words."""
    param, err = deepest(exc, data)
    if not param:
        return invalid(f"Invalid request body: {err['msg']}.")
    if err["type"] == "missing":
        return invalid(f"Missing required parameter: '{param}'.", param=param)
    return invalid(f"Invalid value for '{param}': {err['msg']}.", param=param)


def deepest(exc: ValidationError, data: Any) -> tuple[str, ErrorDetails]:
    """The error that explains `exc` best, and the parameter it names (see `param_path`).

    Among several errors (a union reports one per member), the one whose location reaches
    deepest into the request explains it best.
    """
    best: tuple[str, ErrorDetails] | None = None
    for err in exc.errors():
        param = param_path(err["loc"], data, missing=err["type"] == "missing")
        if best is None or len(param) > len(best[0]):
            best = (param, err)
    assert best is not None  # a ValidationError always holds at least one error
    return best


def param_path(loc: Sequence[int | str], data: Any, *, missing: bool = False) -> str:
    """`("messages", 0, "content")` → `messages[0].content`.

    Pydantic also puts union member labels into locations ("str", "list[…]", a tag): parts
    that are not in `data` are such labels and left out, except a missing field's own name.
    """
    path = ""
    node = data
    last = len(loc) - 1
    for i, part in enumerate(loc):
        if isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
            path += f"[{part}]"
            node = node[part]
        elif (
            isinstance(part, str)
            and isinstance(node, dict)
            and (part in node or (missing and i == last))
        ):
            path += f".{part}" if path else part
            node = node.get(part)
    return path
