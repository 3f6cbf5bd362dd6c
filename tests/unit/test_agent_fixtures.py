"""The recorded requests of the real agent CLIs (`python -m tests.support.agent_fixtures`).

They are what the bridge's tool emulation is measured and tested against: each must be whole
(every tool definition complete), free of keys, and its summary true to its request.
"""

from __future__ import annotations

import json

import pytest

from tests.support import agents
from tests.support.agent_fixtures import FIXTURES, NOTE, SCENARIOS, as_exchange, load, summary
from tests.support.model_api import REDACTED, tool_results

NAMES = sorted(name for scenario in SCENARIOS for name in scenario.names if name)


def test_every_scenario_has_its_fixtures_and_nothing_else_is_there() -> None:
    assert sorted(p.stem for p in FIXTURES.glob("*.json")) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_a_fixture_is_whole_keyless_and_summed_up_truly(name: str) -> None:
    fixture = load(name)
    request = fixture["request"]
    assert agents.API_KEY not in json.dumps(fixture)
    keys = {h: v for h, v in request["headers"].items() if h in ("authorization", "x-api-key")}
    assert keys and set(keys.values()) == {REDACTED}
    assert fixture["summary"] == summary(as_exchange(fixture))
    assert fixture["summary"]["body_bytes"] > fixture["summary"]["tools_json_bytes"] > 5_000
    for tool in request["body"]["tools"]:
        assert (
            {"name", "input_schema"} <= tool.keys()  # Anthropic
            or {"name", "parameters"} <= tool.keys()  # Responses function
            or {"name", "tools"} <= tool.keys()  # Responses namespace of functions
            or {"name", "parameters"} <= tool.get("function", {}).keys()  # chat function
            or tool["type"] == "web_search"
        ), tool


@pytest.mark.parametrize("name", NAMES)
def test_a_turn_after_the_tool_carries_its_result(name: str) -> None:
    fixture = load(name)
    path = fixture["request"]["path"]
    api = {"/v1/messages": "messages", "/v1/responses": "responses"}.get(path, "chat")
    results = tool_results(api, fixture["request"]["body"])
    if "tool-result-turn" in name:
        assert len(results) == 1 and NOTE.strip() in results[0]
    else:
        assert results == []
