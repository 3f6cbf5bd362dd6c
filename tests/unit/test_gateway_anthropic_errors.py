"""Anthropic's error shape for its routes, and its clients' key header."""

from __future__ import annotations

import orjson
import pytest
from starlette.datastructures import Headers

from gateway.access.client_auth import given_key
from gateway.http import errors
from gateway.http.errors import ApiError
from shared import events


@pytest.mark.parametrize(
    ("path", "shape"),
    [
        ("/v1/messages", "anthropic"),
        ("/v1/messages/count_tokens", "anthropic"),
        ("/api/v1/messages", "anthropic"),
        ("/api/v1/messages/batches/x", "anthropic"),
        ("/v1/messagesx", "openai"),
        ("/v1/chat/completions", "openai"),
        ("/v1/responses", "openai"),
        ("/messages", "openai"),
        ("/healthz", "openai"),
    ],
)
def test_the_messages_routes_answer_in_anthropics_shape(path: str, shape: str) -> None:
    assert errors.shape_for(path) == shape


@pytest.mark.parametrize(
    ("status", "type_"),
    [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (405, "invalid_request_error"),
        (413, "request_too_large"),
        (422, "invalid_request_error"),
        (429, "rate_limit_error"),
        (500, "api_error"),
        (502, "api_error"),
        (503, "overloaded_error"),
        (504, "timeout_error"),
    ],
)
def test_statuses_map_to_anthropics_error_types(status: int, type_: str) -> None:
    assert ApiError(status, "what happened").anthropic_body() == {
        "type": "error",
        "error": {"type": type_, "message": "what happened"},
    }


def test_an_anthropic_response_keeps_the_status_and_retry_after() -> None:
    error = errors.from_event(events.error("rate_limited", "slow down", retry_after=6.5))
    response = error.response("anthropic")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "7"
    assert orjson.loads(response.body) == {
        "type": "error",
        "error": {"type": "rate_limit_error", "message": "slow down"},
    }
    assert orjson.loads(error.response().body)["error"]["type"] == "requests"


@pytest.mark.parametrize(
    ("headers", "key"),
    [
        ({"x-api-key": "lmb-one"}, "lmb-one"),
        ({"x-api-key": " lmb-one "}, "lmb-one"),
        ({"authorization": "Bearer lmb-one"}, "lmb-one"),
        ({"authorization": "Bearer lmb-one", "x-api-key": "wrong"}, "lmb-one"),  # bearer counts
        ({"authorization": "Basic c2stb25l"}, None),
        ({"x-api-key": ""}, None),
        ({}, None),
    ],
)
def test_a_key_is_taken_from_x_api_key_or_authorization(
    headers: dict[str, str], key: str | None
) -> None:
    assert given_key(Headers(headers)) == key
