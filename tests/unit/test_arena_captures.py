"""The recorded arena traffic the arena tests replay, and checks that it is what they assume."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

CAPTURES = Path(__file__).resolve().parents[2].parent / "shared" / "arena-protocol" / "captures"
#: What the captures hold in place of real reCAPTCHA tokens.
REDACTED_TOKEN = "<recaptcha-v3-token>"
#: Captures of a stream request answered with 200 and a stream body.
STREAMS = ("new", "followup", "retry", "thinking", "search", "image", "upload")


@cache
def _load(name: str) -> str:
    return (CAPTURES / name).read_text(encoding="utf-8")


def capture(name: str) -> dict[str, Any]:
    """A JSON capture by stem (`"new"`), parsed afresh so tests may not leak changes."""
    return json.loads(_load(f"{name}.json"))


def capture_text(filename: str) -> str:
    return _load(filename)


def test_stream_captures_are_200_streams_with_redacted_tokens() -> None:
    for name in STREAMS:
        recorded = capture(name)
        assert recorded["response"]["status"] == 200
        assert recorded["request"]["path"].startswith("/nextjs-api/stream/")
        assert recorded["request"]["body"]["recaptchaV3Token"] == REDACTED_TOKEN
        assert recorded["response"]["body"].endswith("\n")


def test_catalog_capture_holds_the_documented_models() -> None:
    models = capture("model-catalog-2025-12-01")["initialModels"]
    assert len(models) == 288
    assert sum("organization" not in entry for entry in models) == 93
