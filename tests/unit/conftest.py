"""Fixtures of the fake arena's tests: one fake per test module, one fresh browser-like client per test.

The fake serves the captured site unless a test asks for the new one: so the tests of the captured
site stay as they are whichever site is the default.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakearena.client import ArenaClient
from tests.fakearena.scenario import CAPTURED_SITE
from tests.support.procs import fake_arena


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fake_arena(tmp_path_factory.mktemp("fakearena"), "--site", CAPTURED_SITE) as origin:
        yield origin


@pytest.fixture
def client(origin: str) -> Iterator[ArenaClient]:
    with ArenaClient(origin) as client:
        client.reset()
        client.visit()
        yield client
