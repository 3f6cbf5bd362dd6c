"""Record what the real agent CLIs send, as fixtures under `tests/fixtures/agents/`.

`python -m tests.support.agent_fixtures` runs each agent once per scenario against the scripted
`ModelApi` (it runs `cat note.txt` with the agent's own shell tool, then quotes the result) and
writes, for each model request, a JSON file: the request as received (secrets redacted, tool
definitions complete) and a summary of its shape. The agents run in fixed directories under the
system's temp folder, so that paths in the prompts stay the same from one recording to the next.
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support import agents
from tests.support.model_api import Event, Exchange, ModelApi, Script

FIXTURES = agents.ROOT / "tests" / "fixtures" / "agents"
PROMPT = "Show me what note.txt says."
NOTE = "The launch code is 7-4-1.\n"
#: A model of the arena that neither client knows (the common case), and one Claude Code knows.
ARENA_MODEL = "gemini-3.1-pro-preview"
CLAUDE_MODEL = "claude-sonnet-4-5-20250929"
CODEX_MODEL = "gpt-5.2-codex"

JSON = dict[str, Any]


def compact_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON (how the clients put it on the wire)."""
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def tool_name(tool: JSON) -> str:
    if tool.get("type") == "function" and isinstance(tool.get("function"), dict):
        return tool["function"]["name"]
    return str(tool.get("name") or tool.get("type"))


def summary(exchange: Exchange) -> JSON:
    """The shape of a request at a glance: what the bridge's translation has to handle."""
    body: JSON = exchange.body if isinstance(exchange.body, dict) else {}
    tools: list[JSON] = body.get("tools") or []
    out: JSON = {
        "endpoint": f"{exchange.method} {exchange.path}",
        "query": exchange.query,
        "body_bytes": int(exchange.headers.get("content-length") or 0),
        "body_fields": sorted(body),
        "tools": len(tools),
        "tools_json_bytes": compact_size(tools),
        "tool_names": [tool_name(t) for t in tools],
        "tool_types": sorted({str(t.get("type", "custom (no type)")) for t in tools}),
    }
    if "messages" in body:
        out["messages"] = [
            [m.get("role"), [b.get("type") for b in m["content"]]]
            if isinstance(m.get("content"), list)
            else [m.get("role"), "string" if isinstance(m.get("content"), str) else None]
            for m in body["messages"]
        ]
    if isinstance(body.get("system"), list):
        out["system_bytes"] = sum(compact_size(b.get("text", "")) - 2 for b in body["system"])
    if isinstance(body.get("input"), list):
        out["input"] = [
            [item.get("type"), item.get("role")] if item.get("role") else [item.get("type")]
            for item in body["input"]
        ]
    return out


@dataclass(frozen=True)
class Scenario:
    """One agent run; `names` name the fixture of each model request it makes, in order ("" for
    a request not kept)."""

    agent: str
    model: str
    names: tuple[str, ...]
    env: tuple[tuple[str, str], ...] = ()
    event_filter: Callable[[str, list[Event]], list[Event]] | None = None
    note: str = ""


def _plain_data_lines(kind: str, events: list[Event]) -> list[Event]:
    """A stream without `event:` lines, which Claude Code's client cannot read."""
    return [(None, data) for _, data in events]


SCENARIOS = [
    Scenario(
        "claude",
        ARENA_MODEL,
        ("claude-code-first-turn", "claude-code-tool-result-turn"),
        note="Claude Code with a model it does not know (most of the arena's).",
    ),
    Scenario(
        "claude",
        CLAUDE_MODEL,
        ("claude-code-claude-model-first-turn", "claude-code-claude-model-tool-result-turn"),
        note="Claude Code with a Claude model it knows: longer system prompt and tool texts.",
    ),
    Scenario(
        "claude",
        ARENA_MODEL,
        ("", "claude-code-non-streaming-fallback"),
        event_filter=_plain_data_lines,
        note="A stream Claude Code cannot read makes it ask again without streaming.",
    ),
    Scenario(
        "codex",
        CODEX_MODEL,
        ("codex-responses-first-turn", "codex-responses-tool-result-turn"),
        note="Codex CLI, wire_api = responses (the only wire API it still supports).",
    ),
    Scenario(
        "codex-chat",
        ARENA_MODEL,
        ("codex-chat-first-turn", "codex-chat-tool-result-turn"),
        note="Codex CLI 0.94.0, the last with wire_api = chat: a real chat-completions agent.",
    ),
]


def load(name: str) -> JSON:
    """A recorded fixture, by file name without `.json` (e.g. `codex-responses-first-turn`)."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def as_exchange(fixture: JSON) -> Exchange:
    """A fixture's request as the `Exchange` it was recorded from."""
    return Exchange(**fixture["request"], answer=fixture["answered_with"])


def versions() -> dict[str, str]:
    def locked(lock: Path, package: str) -> str:
        return json.loads(lock.read_text())["packages"][f"node_modules/{package}"]["version"]

    return {
        "claude": locked(agents.AGENTS_DIR / "package-lock.json", "@anthropic-ai/claude-code"),
        "codex": locked(agents.AGENTS_DIR / "package-lock.json", "@openai/codex"),
        "codex-chat": locked(
            agents.AGENTS_DIR / "codex-chat" / "package-lock.json", "@openai/codex"
        ),
    }


def record(scenario: Scenario, root: Path) -> list[tuple[str, JSON]]:
    """Runs the scenario's agent; returns each model request under its fixture name."""
    shutil.rmtree(root, ignore_errors=True)
    work, home = root / "work", root / "home"
    work.mkdir(parents=True)
    home.mkdir()
    (work / "note.txt").write_text(NOTE)
    api = ModelApi(
        Script(command="cat note.txt"), models=(scenario.model,), event_filter=scenario.event_filter
    )
    with api:
        if scenario.agent == "claude":
            run = agents.run_claude(
                PROMPT,
                api.origin,
                work,
                home,
                model=scenario.model,
                proxy=api.origin,
                extra_env=dict(scenario.env),
            )
        else:
            chat = scenario.agent == "codex-chat"
            run = agents.run_codex(
                PROMPT,
                f"{api.origin}/v1",
                work,
                home,
                model=scenario.model,
                wire_api="chat" if chat else "responses",
                chat_wire_binary=chat,
                proxy=api.origin,
            )
    model_requests = api.requests()
    # Codex 0.94 asks api.openai.com for its model list whatever the provider (refused).
    tried = {e.path for e in api.refused()} - {"api.openai.com:443"}
    if tried or (api.refused() and scenario.agent != "codex-chat"):
        raise RuntimeError(f"{scenario.agent} tried other hosts: {[e.path for e in api.refused()]}")
    if run.returncode != 0 or NOTE.strip() not in run.stdout:
        raise RuntimeError(f"the tool round trip failed:\n{run.describe()}")
    if len(model_requests) < len(scenario.names):
        raise RuntimeError(f"{len(model_requests)} requests, expected {len(scenario.names)}")
    agent_name = {"claude": "claude-code", "codex": "codex-cli", "codex-chat": "codex-cli"}[
        scenario.agent
    ]
    return [
        (
            name,
            {
                "agent": agent_name,
                "version": versions()[scenario.agent],
                "model": scenario.model,
                "prompt": PROMPT,
                "note": scenario.note,
                "answered_with": exchange.answer,
                "summary": summary(exchange),
                "request": exchange.as_json(),
            },
        )
        for name, exchange in zip(scenario.names, model_requests, strict=False)
        if name
    ]


def main() -> None:
    for name in agents.AGENTS:
        if reason := agents.missing(name):
            sys.exit(reason)
    FIXTURES.mkdir(parents=True, exist_ok=True)
    root = Path(tempfile.gettempdir()) / "lmb-agent-fixtures"
    for scenario in SCENARIOS:
        for name, fixture in record(scenario, root):
            path = FIXTURES / f"{name}.json"
            path.write_text(json.dumps(fixture, indent=1, ensure_ascii=False) + "\n")
            s = fixture["summary"]
            print(f"{path.name}: {s['tools']} tools, {s['tools_json_bytes']} bytes of tools")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
