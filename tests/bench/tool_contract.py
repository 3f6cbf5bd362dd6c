"""How big the tool contract is for the real agents' tool sets (the recorded requests).

For each request in `tests/fixtures/agents/`: its tools as compact JSON, the contract with every
description whole, the contract the bridge sends (cut to its budget), and the whole first
prompt (contract and transcript) against the arena's limit.

    python -m tests.bench.tool_contract
"""

from __future__ import annotations

import orjson

from gateway.answers.tools import contract
from gateway.answers.tools.definitions import ToolUse
from gateway.apis.anthropic.schemas import parse_messages_request
from gateway.apis.openai.schemas import parse_chat_request, turns_from_messages
from gateway.apis.responses.schemas import parse_responses_request
from gateway.conversations.transcript import MAX_PROMPT_CHARS, Turn, joined_answers, render
from tests.support.agent_fixtures import FIXTURES, load


def parsed(name: str) -> tuple[ToolUse, list[Turn]]:
    """A recorded request's tools and turns, read by the bridge's own parser for its API."""
    raw = orjson.dumps(load(name)["request"]["body"])
    if name.startswith("claude-code"):
        messages = parse_messages_request(raw)
        use, turns = messages.tool_use(), messages.turns()
    elif name.startswith("codex-responses"):
        responses = parse_responses_request(raw)
        use, turns = responses.tool_use(), responses.turns()
    else:
        chat = parse_chat_request(raw)
        use, turns = chat.tool_use(), turns_from_messages(chat.messages)
    assert use is not None
    return use, joined_answers(turns)


def figures(name: str) -> dict[str, int]:
    use, turns = parsed(name)
    transcript = render(turns)
    sent = contract.fitted(use.tools, MAX_PROMPT_CHARS - len(transcript))
    return {
        "tools": len(use.tools),
        "tools_json": len(orjson.dumps(load(name)["request"]["body"]["tools"])),
        "whole": len(contract.contract(use.tools)),
        "sent": len(sent),
        "prompt": len(render([Turn("system", sent), *turns])),
    }


def main() -> None:
    print(f"contract budget {contract.BUDGET:,} characters; arena limit {MAX_PROMPT_CHARS:,}")
    print(f"{'request':44} {'tools':>5} {'tools JSON':>10} {'whole':>7} {'sent':>7} {'prompt':>8}")
    for path in sorted(FIXTURES.glob("*.json")):
        f = figures(path.stem)
        print(
            f"{path.stem:44} {f['tools']:>5} {f['tools_json']:>10,} {f['whole']:>7,} "
            f"{f['sent']:>7,} {f['prompt']:>8,}"
        )


if __name__ == "__main__":
    main()
