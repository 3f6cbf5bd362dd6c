"""A fake LMArena (arena.ai) for tests, benchmarks and the offline demo; see README.md."""

from __future__ import annotations

from tests.fakearena.app import create_app
from tests.fakearena.scenario import Failure, Scenario

__all__ = ["Failure", "Scenario", "create_app"]
