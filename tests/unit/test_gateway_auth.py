from __future__ import annotations

import pytest
from pydantic import SecretStr

from gateway.auth import check_key
from gateway.errors import ApiError

KEYS = [SecretStr("sk-one"), SecretStr("sk-two")]


def test_without_configured_keys_anything_goes() -> None:
    check_key(None, [])
    check_key("Bearer whatever", [])


@pytest.mark.parametrize(
    "header", ["Bearer sk-one", "Bearer sk-two", "bearer sk-two", "Bearer  sk-one "]
)
def test_any_configured_key_is_accepted(header: str) -> None:
    check_key(header, KEYS)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        (None, "You didn't provide an API key."),
        ("", "You didn't provide an API key."),
        ("sk-one", "You didn't provide an API key."),
        ("Basic c2stb25l", "You didn't provide an API key."),
        ("Bearer sk-on", "Incorrect API key provided."),
        ("Bearer sk-one2", "Incorrect API key provided."),
        ("Bearer ", "Incorrect API key provided."),
    ],
)
def test_a_missing_or_wrong_key_is_a_401(header: str | None, message: str) -> None:
    with pytest.raises(ApiError) as caught:
        check_key(header, KEYS)
    assert (caught.value.status, caught.value.code) == (401, "invalid_api_key")
    assert caught.value.message.startswith(message)
