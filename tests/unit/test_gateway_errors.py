from __future__ import annotations

import orjson
import pytest

from gateway.apis.openai.schemas import parse_chat_request
from gateway.http import errors
from gateway.http.errors import ApiError, param_path
from shared import events


@pytest.mark.parametrize(
    ("kind", "status", "type_"),
    [
        ("rate_limited", 429, "requests"),
        ("auth", 503, "server_error"),
        ("challenge", 503, "server_error"),
        ("no_worker", 503, "server_error"),
        ("bad_request", 400, "invalid_request_error"),
        ("upstream", 502, "server_error"),
        ("worker_lost", 502, "server_error"),
        ("timeout", 504, "server_error"),
        ("internal", 502, "server_error"),
        ("recaptcha", 502, "server_error"),
    ],
)
def test_worker_error_kinds_map_to_statuses(kind: str, status: int, type_: str) -> None:
    error = errors.from_event(events.error(kind, "what happened"))
    assert (error.status, error.type, error.message) == (status, type_, "what happened")
    assert error.headers == {}


def test_a_rate_limit_carries_retry_after_in_whole_seconds_rounded_up() -> None:
    error = errors.from_event(events.error("rate_limited", "slow down", retry_after=2.2))
    assert error.headers == {"Retry-After": "3"}
    assert error.body() == {
        "error": {
            "message": "slow down",
            "type": "requests",
            "param": None,
            "code": "rate_limit_exceeded",
        }
    }


def test_an_upstream_error_names_its_kind_as_the_code() -> None:
    body = errors.from_event(events.error("upstream", "arena said no")).body()
    assert body == {
        "error": {
            "message": "arena said no",
            "type": "server_error",
            "param": None,
            "code": "upstream",
        }
    }


def test_the_response_is_the_body_with_the_status_and_headers() -> None:
    response = ApiError(429, "later", headers={"Retry-After": "5"}).response()
    assert response.status_code == 429
    assert response.headers["retry-after"] == "5"
    assert response.headers["content-type"] == "application/json"
    assert orjson.loads(response.body)["error"]["message"] == "later"


@pytest.mark.parametrize(
    ("loc", "data", "missing", "param"),
    [
        (("model",), {}, True, "model"),
        (("messages", 0, "content"), {"messages": [{"content": 1}]}, False, "messages[0].content"),
        (
            ("messages", 0, "content", "str"),
            {"messages": [{"content": 1}]},
            False,
            "messages[0].content",
        ),
        (
            ("messages", 0, "content", "list[str]", 1),
            {"messages": [{"content": [1, 2]}]},
            False,
            "messages[0].content[1]",
        ),
        (("messages", 0, "role"), {"messages": [{}]}, True, "messages[0].role"),
        (("stream_options", "include_usage"), {"stream_options": "x"}, False, "stream_options"),
    ],
)
def test_param_path_follows_the_request(
    loc: tuple[int | str, ...], data: object, missing: bool, param: str
) -> None:
    assert param_path(loc, data, missing=missing) == param


def refusal(raw: bytes) -> ApiError:
    with pytest.raises(ApiError) as caught:
        parse_chat_request(raw)
    assert caught.value.status == 400
    assert caught.value.type == "invalid_request_error"
    return caught.value


def test_malformed_json_is_a_400_without_param() -> None:
    error = refusal(b'{"model": "m", ')
    assert error.param is None
    assert error.message.startswith("We could not parse the JSON body of your request")


@pytest.mark.parametrize("raw", [b"", b"[]", b'"text"'])
def test_a_body_that_is_not_an_object_is_a_400(raw: bytes) -> None:
    error = refusal(raw)
    assert error.param is None


@pytest.mark.parametrize(
    ("body", "param", "message"),
    [
        ({"messages": []}, "model", "Missing required parameter: 'model'."),
        ({"model": "m"}, "messages", "Missing required parameter: 'messages'."),
        (
            {"model": 5, "messages": []},
            "model",
            "Invalid value for 'model': Input should be a valid string.",
        ),
        (
            {"model": "m", "messages": "hi"},
            "messages",
            "Invalid value for 'messages': Input should be a valid list.",
        ),
        (
            {"model": "m", "messages": [{"content": "hi"}]},
            "messages[0].role",
            "Missing required parameter: 'messages[0].role'.",
        ),
        (
            {"model": "m", "messages": [{"role": "robot", "content": "hi"}]},
            "messages[0].role",
            "Invalid value for 'messages[0].role': Input should be 'system', 'developer', 'user',"
            " 'assistant' or 'tool'.",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "audio"}]}]},
            "messages[0].content[0]",
            "Invalid value for 'messages[0].content[0]': Input tag 'audio' found using 'type' does"
            " not match any of the expected tags: 'text', 'image_url'.",
        ),
        (
            {"model": "m", "messages": [{"role": "user", "content": [{"type": "text"}]}]},
            "messages[0].content[0].text",
            "Missing required parameter: 'messages[0].content[0].text'.",
        ),
        (
            {"model": "m", "messages": [], "stream": "often"},
            "stream",
            "Invalid value for 'stream': Input should be a valid boolean, unable to interpret"
            " input.",
        ),
    ],
)
def test_schema_errors_name_the_parameter(body: dict, param: str, message: str) -> None:
    error = refusal(orjson.dumps(body))
    assert (error.param, error.message) == (param, message)


def test_unknown_parameters_are_ignored() -> None:
    request = parse_chat_request(
        orjson.dumps(
            {
                "model": "m",
                "messages": [{"role": "user", "content": "hi", "name": "bob"}],
                "temperature": 0.2,
                "tools": [{"type": "function"}],
                "stream": True,
                "stream_options": {"include_usage": True},
            }
        )
    )
    assert (request.model, request.stream, request.include_usage) == ("m", True, True)
