"""The two versions of the arena the fake serves, and the models tests ask on each."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from tests.fakearena.scenario import CAPTURED_SITE, DEFAULT_SITE, NEW_SITE, Site
from tests.support.stack import Stack

#: Every site the bridge handles: end-to-end tests of each kind of answer run on both.
SITES: tuple[Site, ...] = (NEW_SITE, CAPTURED_SITE)


@dataclass(frozen=True, slots=True)
class Models:
    """Public names of the site's catalog, by what a test needs of them."""

    #: A chat model that takes images.
    chat: str
    #: Another chat model (for side by side).
    other_chat: str
    #: A chat model without image input.
    text_only: str
    reasoning: str
    search: str
    image: str


MODELS: dict[Site, Models] = {
    CAPTURED_SITE: Models(
        chat="gemini-2.5-pro",
        other_chat="gpt-5.1-high",
        text_only="claude-opus-4-5-20251101",
        reasoning="deepseek-v3.2-exp-thinking",
        search="grok-4-fast-search",
        image="hunyuan-image-3.0",
    ),
    NEW_SITE: Models(
        chat="gemini-2.5-pro",
        other_chat="gpt-5.1-high",
        text_only="glm-5",
        # Its `text` id differs from its `code` one: the text group's is sent.
        reasoning="qwen3-max-thinking",
        search="claude-sonnet-4-6-search",
        image="seedream-5.0-pro",
    ),
}
#: The models of the site the fake serves by default.
DEFAULT = MODELS[DEFAULT_SITE]


def mode_refusal(request: dict) -> bool:
    """A create the arena refused for its mode: the worker sends it again in the other one (on
    the captured site, a worker's first new chat tries `direct-battle` before `direct`)."""
    return request["status"] == 400 and (request["body"] or {}).get("mode") == "direct-battle"


def on_site(request: pytest.FixtureRequest, default: str = "stack") -> tuple[Stack, Site]:
    """For a fixture parametrized over `SITES`: the module's stack for the site asked (its
    `default` fixture for the default site, its `captured` one for the captured site)."""
    site: Site = request.param
    return request.getfixturevalue(default if site == DEFAULT_SITE else "captured"), site
