"""The real coding agents, from their npm packages, through the whole bridge on the fake arena.

Claude Code (`claude -p`, Anthropic Messages), Codex CLI (`codex exec`, Responses) and the last
Codex that speaks chat completions each get a task that needs one tool call: the scripted arena
model asks, in the bridge's `<tool_call>` form, for the agent's shell tool to `cat note.txt`;
the next turn, which must carry the note's text (the agent ran the command and sent the result
back), is answered by quoting it; the agent prints that and exits 0. Claude Code and Codex
(Responses) ask for models of their own (`claude-sonnet-4-5`, `gpt-5.2-codex`), which
`LMB_MODEL_ALIASES` sends to an arena model.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support import agents
from tests.support.stack import Stack, running

pytestmark = pytest.mark.browser

MODEL = "gemini-2.5-pro"
ALIASES = f"claude-*={MODEL},gpt-5*={MODEL}"
PROMPT = "Show me what note.txt says."
#: Bounds each agent run; through the bridge a run takes a few seconds.
TIMEOUT = 120
STREAM_PATH = "/nextjs-api/stream/"


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    workdir = tmp_path_factory.mktemp("agents")
    with running(workdir, "agents-1", gateway_env={"LMB_MODEL_ALIASES": ALIASES}) as stack:
        yield stack


@pytest.fixture
def note(stack: Stack, tmp_path: Path) -> Iterator[tuple[Path, Path, str]]:
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    code = secrets.token_hex(4)
    text = f"The launch code is {code}."
    (work / "note.txt").write_text(text + "\n")
    yield work, home, text
    stack.arena("POST", "scenario", json={"replies": []})


def script(stack: Stack, note: str, call: dict) -> None:
    """First the shell call; then, once a turn carries the note, the answer quoting it."""
    block = f"I will read it.\n<tool_call>{json.dumps(call)}</tool_call>"
    replies = [
        {"match": note.replace(".", r"\."), "text": f"The note says: {note}"},
        {"match": "note\\.txt", "text": block},
    ]
    stack.arena("POST", "scenario", json={"replies": replies})


def needs(agent: str) -> None:
    if reason := agents.missing(agent):
        pytest.skip(reason)


def arena_turns(stack: Stack, since: int) -> list[tuple[str, str]]:
    return [
        (r["path"][len(STREAM_PATH) :].split("/", 1)[0], r["body"]["userMessage"]["content"])
        for r in stack.arena_log()["requests"][since:]
        if r["path"].startswith(STREAM_PATH) and r["status"] == 200 and r["body"].get("userMessage")
    ]


def test_claude_code_runs_a_command_the_model_asks_for(
    stack: Stack, note: tuple[Path, Path, str]
) -> None:
    needs("claude")
    work, home, text = note
    script(stack, text, {"name": "Bash", "arguments": {"command": "cat note.txt"}})
    since = len(stack.arena_log()["requests"])

    run = agents.run_claude(
        PROMPT, stack.base_url, work, home, model="claude-sonnet-4-5", timeout=TIMEOUT
    )

    assert run.ok and f"The note says: {text}" in run.stdout, run.describe()
    turns = arena_turns(stack, since)
    assert [kind for kind, _ in turns] == ["create-evaluation", "post-to-evaluation"], turns
    assert '"name":"Bash"' in turns[0][1] and text in turns[1][1]


@pytest.mark.parametrize("wire", ["responses", "builtin-provider", "chat"])
def test_codex_runs_a_command_the_model_asks_for(
    stack: Stack, note: tuple[Path, Path, str], wire: str
) -> None:
    """`builtin-provider`: Codex's own OpenAI provider moved to the bridge, which tries a
    WebSocket first and is sent to HTTP by a 426."""
    chat = wire == "chat"
    needs("codex-chat" if chat else "codex")
    work, home, text = note
    if chat:  # 0.94's shell tool takes an argv
        call = {"name": "shell", "arguments": {"command": ["bash", "-lc", "cat note.txt"]}}
    else:
        call = {"name": "exec_command", "arguments": {"cmd": "cat note.txt"}}
    script(stack, text, call)
    since = len(stack.arena_log()["requests"])

    run = agents.run_codex(
        PROMPT,
        f"{stack.base_url}/v1",
        work,
        home,
        # 0.94 offers gpt-5 models other shell tools: it is given an arena model's name.
        model=MODEL if chat else "gpt-5.2-codex",
        wire_api="chat" if chat else "responses",
        builtin_provider=wire == "builtin-provider",
        chat_wire_binary=chat,
        timeout=TIMEOUT,
    )

    assert run.ok and f"The note says: {text}" in run.stdout, run.describe()
    turns = arena_turns(stack, since)
    assert [kind for kind, _ in turns] == ["create-evaluation", "post-to-evaluation"], turns
    if wire == "builtin-provider":
        upgrade = {
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
        }
        refused = httpx.get(f"{stack.base_url}/v1/responses", headers=upgrade, timeout=10)
        assert refused.status_code == 426
    assert f'"name":"{call["name"]}"' in turns[0][1] and text in turns[1][1]
