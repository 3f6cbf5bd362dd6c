"""Token counts of prompts and answers. Pure: no IO here.

The arena rarely reports usage; where it does not, a count is estimated from characters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def estimate_tokens(text_chars: int) -> int:
    """About four characters a token: OpenAI's rule of thumb."""
    return math.ceil(text_chars / 4)


def token_counts(
    prompt: str, output_chars: int, reported: Mapping[str, Any] | None
) -> tuple[int, int]:
    """(input, output) tokens of an answer: the arena's counts where given, else estimates."""
    reported = reported or {}
    prompt_tokens = reported.get("promptTokens")
    if not isinstance(prompt_tokens, int):
        prompt_tokens = estimate_tokens(len(prompt))
    completion_tokens = reported.get("completionTokens")
    if not isinstance(completion_tokens, int):
        completion_tokens = estimate_tokens(output_chars)
    return prompt_tokens, completion_tokens
