"""Settings read from `LMB_`-prefixed environment variables."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

#: A list given as one comma-separated environment variable: `a,b,c`.
CommaList = Annotated[list[str], NoDecode]
#: The most workers one `up` runs.
MAX_WORKERS = 64


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="LMB_", extra="ignore")

    # Where things are
    redis_url: str | None = Field(
        default=None, description="Redis to use; unset means an embedded one (`up` only)."
    )
    arena_url: str = Field(default="https://arena.ai", description="The arena's origin.")
    host: str = Field(default="127.0.0.1", description="Address the gateway binds to.")
    port: int = Field(default=8000, ge=1, le=65535, description="Port the gateway binds to.")
    state_dir: Path = Field(
        default=Path(".lmb"), description="Embedded Redis data, browser profiles, logs."
    )
    redis_sentinels: CommaList = Field(
        default_factory=list,
        description="Redis through Sentinel: the Sentinels, `host:port` comma-separated"
        " (instead of redis_url).",
    )
    redis_sentinel_master: str = Field(
        default="mymaster", description="The name Sentinel knows the Redis primary by."
    )
    redis_password: SecretStr | None = Field(
        default=None, description="Redis's password, when redis_url carries none (or Sentinel)."
    )
    redis_username: str | None = Field(
        default=None, description="Redis ACL user, when redis_url names none (or Sentinel)."
    )
    redis_tls: bool = Field(
        default=False,
        description="TLS to Redis (and the Sentinels); a rediss:// URL says so by itself.",
    )
    redis_ca_certs: Path | None = Field(
        default=None, description="CA certificates that sign Redis's TLS certificate (PEM)."
    )
    redis_sentinel_password: SecretStr | None = Field(
        default=None, description="The Sentinels' own password, if they ask for one."
    )

    # Access
    admin_key: SecretStr | None = Field(default=None, description="Key for the admin surfaces.")
    admin_session_hours: float = Field(
        default=12.0, gt=0, le=24 * 30, description="How long an admin page sign-in lasts."
    )
    lease_ttl_seconds: float = Field(
        default=30.0,
        gt=0,
        description="How long an answer still counts against its key's concurrent-stream limit"
        " after its gateway stopped renewing it (a gateway that died).",
    )
    usage_retention_days: int = Field(
        default=90, ge=1, description="How long per-key daily usage is kept."
    )
    open: bool = Field(
        default=False,
        description="Serve clients without a key while none is made (bound to loopback only).",
    )
    trusted_proxies: CommaList = Field(
        default_factory=list,
        description="Addresses or networks of the proxies whose X-Forwarded-For/Proto the"
        " gateway believes (`*`: any); none by default.",
    )
    auth_failures_per_minute: int = Field(
        default=10,
        ge=1,
        description="Failed sign-ins and keys from one address (an IPv6 /64) before it gets 429s.",
    )
    auth_failures_per_minute_total: int = Field(
        default=300,
        ge=1,
        description="Failed sign-ins and keys from all addresses together before every address"
        " that failed recently gets 429s.",
    )

    # Workers and browsers
    workers: int = Field(default=1, ge=0, le=MAX_WORKERS, description="Workers `up` starts.")
    worker_id: str | None = Field(default=None, description="This worker's name (default: random).")
    worker_capacity: int = Field(
        default=4, ge=1, le=64, description="Streams one browser runs at once."
    )
    headless: bool | None = Field(
        default=None, description="Headless Chrome; unset means headless unless DISPLAY is set."
    )
    display: Literal["auto", "on", "off"] = Field(
        default="auto",
        description="Headed Chromium on the worker's own Xvfb screen, watched through noVNC;"
        " auto: on when Xvfb, x11vnc and websockify are installed and headless is not asked for.",
    )
    novnc_host: str = Field(
        default="127.0.0.1",
        description="Address a worker's noVNC (websockify) listens on; only gateways connect to it.",
    )
    chromium_path: str = Field(default="/usr/bin/chromium", description="Chromium binary.")
    chromedriver_path: str = Field(default="/usr/bin/chromedriver", description="chromedriver.")
    chromium_args: list[str] = Field(
        default_factory=list, description="Extra Chromium switches (JSON list)."
    )
    profile_dir: Path | None = Field(
        default=None, description="Browser profile directory (default: per worker in state_dir)."
    )
    token_pool_size: int = Field(
        default=2, ge=0, le=16, description="reCAPTCHA tokens a worker keeps minted ahead."
    )
    token_max_age_seconds: float = Field(
        default=100.0,
        gt=0,
        description="Drop pre-minted tokens older than this (they live ~120 s).",
    )
    page_ready_timeout_seconds: float = Field(default=60.0, gt=0)
    heartbeat_seconds: float = Field(default=2.0, gt=0, description="Worker heartbeat period.")
    browser_probe_seconds: float = Field(
        default=10.0, gt=0, description="How often a worker checks that its browser answers."
    )
    browser_probe_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A browser that does not answer a check this long is restarted.",
    )
    catalog_refresh_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How often a worker reads the model catalog off the arena again.",
    )
    novnc_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Port a worker's noVNC (websockify) listens on; unset: a free one.",
    )
    novnc_allowed: CommaList = Field(
        default_factory=lambda: ["127.0.0.0/8", "::1"],
        description="Where gateways may open workers' screens: host names, addresses or networks"
        " (a heartbeat naming anywhere else is not followed).",
    )
    account_min_interval_seconds: float = Field(
        default=45.0,
        ge=0,
        description="Least time between two stream calls of one arena account (0: no bound).",
    )
    account_calls_per_15_minutes: int = Field(
        default=6,
        ge=0,
        description="Most stream calls of one arena account in any 15 minutes (0: no bound).",
    )
    account_calls_per_day: int = Field(
        default=40,
        ge=0,
        description="Most stream calls of one arena account per UTC day (0: no bound).",
    )
    proxy: SecretStr | None = Field(
        default=None,
        description="This worker's account's own proxy (`http://`, `https://` or `socks5://`,"
        " with `user:password@` if it asks): its browser reaches the arena only through it.",
    )
    egress_probe_url: str | None = Field(
        default=None,
        description="A URL that answers the caller's address (e.g. `https://api.ipify.org`),"
        " fetched in the worker's page to show the address the arena sees; unset: none fetched.",
    )
    account_cooling_seconds: float = Field(
        default=300.0,
        gt=0,
        description="How long an account rests after the arena's `429 prompt failed`, which"
        " names no time.",
    )
    account_flag_pause_seconds: float = Field(
        default=1200.0,
        gt=0,
        description="How long a flagged account waits for a person before it tries alone (one"
        " call); the next pauses are 2, 4 and 6 times as long.",
    )

    # Requests
    worker_wait_seconds: float = Field(
        default=10.0, ge=0, description="How long a request waits for a ready worker before 503."
    )
    keepalive_seconds: float = Field(
        default=10.0, gt=0, description="SSE keep-alive comment period while a job waits."
    )
    first_event_wait_seconds: float = Field(
        default=3.0,
        ge=0,
        description="Streamed requests wait this long for the arena to accept the request (or the"
        " first token) before committing a 200, so that early failures still get a real status.",
    )
    max_body_bytes: int = Field(default=20 * 1024 * 1024, gt=0, description="Largest request body.")
    job_timeout_seconds: float = Field(
        default=900.0, gt=0, description="Longest one answer may run."
    )
    events_ttl_seconds: int = Field(
        default=3600, gt=0, description="How long a finished job's event stream is kept."
    )
    conversation_ttl_seconds: int = Field(
        default=86400,
        gt=0,
        description="How long a conversation's arena thread (and its images) is remembered.",
    )
    merge_system_messages: bool = Field(
        default=False, description="Merge all system messages into one at the top of a transcript."
    )
    allow_private_image_urls: bool = Field(
        default=False,
        description="Fetch image URLs that resolve to private, loopback or link-local addresses.",
    )
    image_fetch_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Longest the gateway spends fetching one image URL."
    )
    model_aliases: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict,
        description="Model names answered by arena models: `pattern=model,…` (`*` and `?` as"
        " in shell globs), e.g. `claude-*=claude-sonnet-5,gpt-5*=gpt-5.1-high`.",
    )
    drain_seconds: float = Field(
        default=20.0,
        ge=0,
        description="On SIGTERM, how long a gateway or worker lets the answers under way finish"
        " before it stops (a gateway's streams left then are resumed on another gateway).",
    )
    delete_chats: bool = Field(
        default=False,
        description="Delete a conversation's arena chat once the bridge has forgotten it"
        " (conversation_ttl_seconds after its last turn).",
    )
    image_bytes_per_key: int = Field(
        default=256 * 1024 * 1024,
        gt=0,
        description="Bytes of images one client key may keep for its conversations at once.",
    )
    queue_max_wait_seconds: float = Field(
        default=300.0,
        gt=0,
        description="Longest a request waits in the queue for an account with room before 429.",
    )

    log_level: str = Field(default="INFO")
    log_json: bool = Field(default=False, description="Structured JSON logs.")

    @field_validator("model_aliases", mode="before")
    @classmethod
    def _aliases(cls, value: object) -> object:
        """`pattern=model,pattern=model`, in order (the first match wins)."""
        if not isinstance(value, str):
            return value
        aliases = {}
        for entry in filter(None, (e.strip() for e in value.split(","))):
            pattern, _, target = (part.strip() for part in entry.partition("="))
            if not pattern or not target:
                raise ValueError(f"an alias is `pattern=model`, not {entry!r}")
            aliases[pattern] = target
        return aliases

    @field_validator("redis_sentinels", "trusted_proxies", "novnc_allowed", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("trusted_proxies")
    @classmethod
    def _addresses(cls, value: list[str]) -> list[str]:
        for entry in value:
            if entry != "*":
                ipaddress.ip_network(entry, strict=False)  # a ValueError names the bad entry
        return value

    @property
    def arena_origin(self) -> str:
        return self.arena_url.rstrip("/")
