"""Run real coding-agent CLIs (Claude Code, Codex CLI) against a base URL, offline.

The CLIs come from npm (`scripts/setup-agents`: `npm ci` in `tests/agents`, and in
`tests/agents/codex-chat` for the last Codex that speaks chat completions). Each run gets a HOME of
its own, a config pointing the agent at the given base URL with everything it would send elsewhere
(updates, telemetry, plugin catalogues) switched off, and every other host routed to a proxy that
refuses it: the caller's (`proxy=`, e.g. a `ModelApi`'s origin, which records such attempts), or
else one of the run's own, whose refusals come back in `AgentRun.refused`. Nothing leaves the
machine, whatever a version of an agent tries.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tests.support.model_api import ModelApi

ROOT = Path(__file__).resolve().parents[2]
AGENTS_DIR = ROOT / "tests" / "agents"
NODE_MODULES = AGENTS_DIR / "node_modules"
#: Codex CLI 0.94.0, the last that has `wire_api = "chat"` (0.95.0 refuses it).
CODEX_CHAT_MODULES = AGENTS_DIR / "codex-chat" / "node_modules"

#: The key agents are given; the bridge on loopback with no keys made takes any.
API_KEY = "sk-lmb-test-key"
#: The environment variable Codex reads its provider's key from (config `env_key`).
CODEX_KEY_ENV = "LMB_API_KEY"
#: A PATH with the system's tools only (the agents' shells run `cat`, `bash`, `git`).
SYSTEM_PATH = "/usr/local/bin:/usr/bin:/bin"
AGENTS = ("claude", "codex", "codex-chat")


@dataclass(frozen=True)
class AgentRun:
    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool = False
    #: Hosts the agent tried to reach through the run's own refusing proxy (`host:port`, or URL).
    refused: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.returncode == 0 and not self.timed_out

    def describe(self) -> str:
        """Everything about the run, for an assertion's message."""
        return (
            f"$ {' '.join(self.argv)}\nexit {self.returncode} after {self.seconds:.1f}s"
            f"{' (timed out)' if self.timed_out else ''}; refused: {list(self.refused)}\n"
            f"--- stdout\n{self.stdout[-4000:]}\n--- stderr\n{self.stderr[-4000:]}"
        )


# --- where the CLIs are ----------------------------------------------------------------------------


def claude_binary() -> Path | None:
    """Claude Code's native binary, as its npm package installs it."""
    wrapper = NODE_MODULES / "@anthropic-ai" / "claude-code" / "bin" / "claude.exe"
    # The package's postinstall copies the platform binary over a small placeholder; without
    # install scripts the placeholder stays, and the platform package's binary is the one to run.
    if wrapper.is_file() and wrapper.stat().st_size > 1_000_000:
        return wrapper
    for platform_pkg in sorted((NODE_MODULES / "@anthropic-ai").glob("claude-code-linux-*")):
        binary = platform_pkg / "claude"
        if binary.is_file():
            return binary
    return None


def codex_binary(chat_wire: bool = False) -> Path | None:
    """Codex CLI's launcher (`codex.js`, which runs the native binary it ships for linux)."""
    modules = CODEX_CHAT_MODULES if chat_wire else NODE_MODULES
    launcher = modules / ".bin" / "codex"
    # 0.94 carries every platform's binary in its own package; later ones in optional packages.
    native = [
        *modules.glob("@openai/codex-linux-*/vendor/*linux*/bin/codex"),
        *modules.glob("@openai/codex/vendor/x86_64-unknown-linux-musl/codex/codex"),
        *modules.glob("@openai/codex/vendor/aarch64-unknown-linux-musl/codex/codex"),
    ]
    return launcher if launcher.exists() and native else None


def binary(agent: str) -> Path | None:
    assert agent in AGENTS, agent
    return claude_binary() if agent == "claude" else codex_binary(agent == "codex-chat")


def missing(agent: str) -> str | None:
    """Why `agent` ("claude", "codex" or "codex-chat") cannot run here, or None when it can."""
    if binary(agent) is None:
        return f"{agent} is not installed: run scripts/setup-agents (npm ci in tests/agents)"
    return None


# --- environments ----------------------------------------------------------------------------------


def base_env(home: Path, proxy: str) -> dict[str, str]:
    """A clean environment: the system's PATH, a HOME of the run's own, no colours, and every
    host but loopback sent to `proxy`."""
    env = {
        "PATH": SYSTEM_PATH,
        "HOME": str(home),
        "TMPDIR": os.environ.get("TMPDIR", "/tmp"),
        "LANG": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
    }
    for name in ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY"):
        env[name] = env[name.lower()] = proxy
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost,::1"
    return env


def claude_env(
    origin: str,
    home: Path,
    *,
    model: str,
    proxy: str,
    api_key: str = API_KEY,
    bearer: bool = False,
) -> dict[str, str]:
    """Claude Code pointed at `origin` (no `/v1`: the client adds it), as a user sets it up.

    The key goes in `ANTHROPIC_API_KEY` (sent as `x-api-key`), or with `bearer` in
    `ANTHROPIC_AUTH_TOKEN` (sent as `Authorization: Bearer`). Every helper model (the "small
    fast" one, subagents) is the same model, so all requests go to `origin` with `model`.
    """
    env = base_env(home, proxy)
    env.update(
        {
            "ANTHROPIC_BASE_URL": origin,
            "ANTHROPIC_MODEL": model,
            "ANTHROPIC_SMALL_FAST_MODEL": model,
            "ANTHROPIC_DEFAULT_HAIKU_MODEL": model,
            "ANTHROPIC_DEFAULT_SONNET_MODEL": model,
            "ANTHROPIC_DEFAULT_OPUS_MODEL": model,
            "CLAUDE_CODE_SUBAGENT_MODEL": model,
            # Nothing but model requests: no telemetry, error reports, update checks, surveys.
            "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
            "DISABLE_AUTOUPDATER": "1",
            "DISABLE_TELEMETRY": "1",
            "DISABLE_ERROR_REPORTING": "1",
            "CLAUDE_CODE_DISABLE_FEEDBACK_SURVEY": "1",
            # Root may skip permission prompts only where it says it runs in a sandbox.
            "IS_SANDBOX": "1",
        }
    )
    env["ANTHROPIC_AUTH_TOKEN" if bearer else "ANTHROPIC_API_KEY"] = api_key
    return env


def codex_config(
    base_url: str, *, model: str, wire_api: str = "responses", builtin_provider: bool = False
) -> str:
    """`config.toml` for Codex at `base_url` (with `/v1`), nothing else reached.

    By default a provider of its own (`[model_providers.lmb]`, key in `LMB_API_KEY`); with
    `builtin_provider`, the built-in OpenAI one moved with `openai_base_url` (key in
    `OPENAI_API_KEY`), which tries a WebSocket first (see `ModelApi`).
    """
    head = [f"openai_base_url = {json.dumps(base_url)}"] if builtin_provider else []
    provider = [
        "[model_providers.lmb]",
        'name = "lmarena-bridge"',
        f"base_url = {json.dumps(base_url)}",
        f"env_key = {json.dumps(CODEX_KEY_ENV)}",
        f"wire_api = {json.dumps(wire_api)}",
        "",
    ]
    return "\n".join(
        [
            *head,
            f"model = {json.dumps(model)}",
            *([] if builtin_provider else ['model_provider = "lmb"']),
            'approval_policy = "never"',
            'sandbox_mode = "danger-full-access"',
            "check_for_update_on_startup = false",
            "",
            "[features]",
            "plugins = false",
            "",
            "[analytics]",
            "enabled = false",
            "",
            *([] if builtin_provider else provider),
        ]
    )


def codex_env(
    base_url: str,
    home: Path,
    *,
    model: str,
    proxy: str,
    wire_api: str = "responses",
    builtin_provider: bool = False,
    api_key: str = API_KEY,
) -> dict[str, str]:
    """Codex pointed at `base_url`: writes `$HOME/.codex/config.toml` and returns the env."""
    codex_home = home / ".codex"
    codex_home.mkdir(parents=True, exist_ok=True)
    config = codex_config(
        base_url, model=model, wire_api=wire_api, builtin_provider=builtin_provider
    )
    (codex_home / "config.toml").write_text(config)
    env = base_env(home, proxy)
    env["CODEX_HOME"] = str(codex_home)
    env["OPENAI_API_KEY" if builtin_provider else CODEX_KEY_ENV] = api_key
    return env


# --- command lines ---------------------------------------------------------------------------------


def claude_argv(prompt: str, *extra: str) -> list[str]:
    """`claude -p` (print mode): one prompt, tools allowed without asking, the answer on stdout."""
    found = claude_binary()
    assert found is not None, missing("claude")
    return [str(found), "-p", prompt, "--dangerously-skip-permissions", *extra]


def codex_argv(prompt: str, *extra: str, chat_wire: bool = False) -> list[str]:
    """`codex exec`: one prompt, commands run without approval or sandbox, outside a git repo."""
    found = codex_binary(chat_wire)
    assert found is not None, missing("codex-chat" if chat_wire else "codex")
    return [
        str(found),
        "exec",
        "--skip-git-repo-check",
        "--dangerously-bypass-approvals-and-sandbox",
        "--color",
        "never",
        *extra,
        prompt,
    ]


# --- running ---------------------------------------------------------------------------------------


def run_claude(
    prompt: str,
    origin: str,
    workdir: Path,
    home: Path,
    *,
    model: str,
    timeout: float = 60,
    bearer: bool = False,
    proxy: str | None = None,
    extra_args: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> AgentRun:
    """Claude Code, in print mode, at `origin` (e.g. `http://127.0.0.1:8000`)."""
    with offline(proxy) as (proxy_url, refused):
        env = claude_env(origin, home, model=model, bearer=bearer, proxy=proxy_url)
        done = run(claude_argv(prompt, *extra_args), workdir, {**env, **(extra_env or {})}, timeout)
        return dataclasses.replace(done, refused=refused())


def run_codex(
    prompt: str,
    base_url: str,
    workdir: Path,
    home: Path,
    *,
    model: str,
    wire_api: str = "responses",
    builtin_provider: bool = False,
    chat_wire_binary: bool = False,
    timeout: float = 60,
    proxy: str | None = None,
    extra_args: tuple[str, ...] = (),
    extra_env: dict[str, str] | None = None,
) -> AgentRun:
    """`codex exec` at `base_url` (e.g. `http://127.0.0.1:8000/v1`); `chat_wire_binary` runs
    the chat-completions Codex (give it `wire_api="chat"`)."""
    with offline(proxy) as (proxy_url, refused):
        env = codex_env(
            base_url,
            home,
            model=model,
            proxy=proxy_url,
            wire_api=wire_api,
            builtin_provider=builtin_provider,
        )
        argv = codex_argv(prompt, *extra_args, chat_wire=chat_wire_binary)
        done = run(argv, workdir, {**env, **(extra_env or {})}, timeout)
        return dataclasses.replace(done, refused=refused())


@contextlib.contextmanager
def offline(proxy: str | None) -> Iterator[tuple[str, Callable[[], tuple[str, ...]]]]:
    """The proxy to send other hosts to: `proxy`, or a refusing one of this run's own."""
    if proxy:
        yield proxy, tuple
        return
    with ModelApi() as trap:
        yield trap.origin, lambda: tuple(e.path for e in trap.refused())


def run(argv: list[str], cwd: Path, env: dict[str, str], timeout: float) -> AgentRun:
    """Runs one agent to its end, or kills its whole process group after `timeout` seconds."""
    started = time.monotonic()
    proc = subprocess.Popen(
        argv,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group: the kill reaches the shells it started
    )
    timed_out = False
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        timed_out = True
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # whatever it left behind
    return AgentRun(
        argv=argv,
        returncode=proc.returncode,
        stdout=stdout,
        stderr=stderr,
        seconds=time.monotonic() - started,
        timed_out=timed_out,
    )
