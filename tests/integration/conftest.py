"""Fixtures shared by the integration tests that run against a module's `stack`, and the stack
of the arena as captured that every module asking both sites shares."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator

import pytest

from tests.fakearena.scenario import CAPTURED_SITE
from tests.support.stack import Stack, running

#: The admin key of the shared captured-site stack.
CAPTURED_ADMIN_KEY = secrets.token_hex(16)


@pytest.fixture(scope="session")
def captured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A gateway and one worker against the arena as captured (Nov–Dec 2025), started once for
    the session: the end-to-end tests ask it what they ask today's site. Tests leave it as they
    found it, never reset it (that would void the tokens its worker minted ahead), and find
    their own sessions by unique prompts."""
    with running(
        tmp_path_factory.mktemp("captured"),
        "captured-1",
        site=CAPTURED_SITE,
        gateway_env={"LMB_ALLOW_PRIVATE_IMAGE_URLS": "true"},  # the image tests' pictures
        LMB_ADMIN_KEY=CAPTURED_ADMIN_KEY,
    ) as stack:
        yield stack


@pytest.fixture
def fail_next(stack: Stack) -> Iterator[Callable[..., None]]:
    """Makes the arena fail the next create-evaluation as given; no failures after the test.

    (Tests find their arena session by a unique prompt, so the arena is never reset: a reset
    would void the reCAPTCHA tokens the worker minted ahead.)
    """

    def fail(kind: str, **fields: object) -> None:
        stack.arena(
            "POST", "scenario", json={"failures": [{"kind": kind, "endpoint": "create", **fields}]}
        )

    yield fail
    stack.arena("POST", "scenario", json={"failures": []})
