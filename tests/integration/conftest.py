"""Fixtures shared by the integration tests that run against a module's `stack`."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.support.stack import Stack


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
