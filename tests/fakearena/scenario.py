"""The knobs a test turns: which site, pacing, failures, challenges, accounts, catalog, replies."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

#: The site as captured (Nov–Dec 2025), and as public bridges report it in Sep–Oct 2026.
Site = Literal["2025-12", "2026-10"]
CAPTURED_SITE: Site = "2025-12"
NEW_SITE: Site = "2026-10"
#: The site the fake serves unless told otherwise: today's, as reported.
DEFAULT_SITE: Site = NEW_SITE

FailureKind = Literal[
    "rate_limit_429",
    "prompt_failed",
    "recaptcha_403",
    "unauthorized_401",
    "server_500",
    "cut_stream",
    "error_line",
    "empty_200",
    "pause",
]
#: Failures answered instead of the stream; the others shape a 200 stream.
STATUS_FAILURES = frozenset(
    {"rate_limit_429", "prompt_failed", "recaptcha_403", "unauthorized_401", "server_500"}
)

Endpoint = Literal["create", "post", "retry"]
ActionName = Literal[
    "updateTouConsent",
    "generateUploadUrl",
    "getSignedUrl",
    "getHistory",
    "deleteEvaluationSession",
    "archiveEvaluationSession",
]


class Failure(BaseModel):
    """One injected failure: `kind`, applied to `times` requests after skipping `after`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FailureKind
    endpoint: Literal["create", "post", "retry", "any"] = "any"
    account: str | None = Field(
        default=None, description="Only requests of this account (`user:<name>`, `guest:<id>`)."
    )
    after: int = Field(default=0, ge=0, description="Matching requests to let through first.")
    times: int | None = Field(default=1, ge=1, description="Requests to fail; null: all of them.")
    retry_after: int = Field(default=60, ge=0, description="rate_limit_429: retry-after seconds.")
    seconds: float = Field(default=5.0, ge=0, description="pause: silence after the first line.")
    message: str = Field(
        default="Resource exhausted. Please try again later.", description="error_line: a3 text."
    )

    def matches(self, endpoint: Endpoint, account: str | None) -> bool:
        return self.endpoint in ("any", endpoint) and self.account in (None, account)


class FlagRule(BaseModel):
    """When the site's security check flags an account: `requests` stream calls in a window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests: int = Field(ge=1, description="The call that makes this many in the window trips.")
    within_seconds: float = Field(gt=0, description="The window, from the first counted call.")
    lasts_seconds: float | None = Field(
        default=None, gt=0, description="Life of a flag after its latest refusal; null: forever."
    )


class Reply(BaseModel):
    """A scripted answer: `text` for a turn whose user message `match` (a regex) is found in."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    match: str
    text: str

    @field_validator("match")
    @classmethod
    def _compiles(cls, pattern: str) -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"bad regex {pattern!r}: {exc}") from exc
        return pattern


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    site: Site = Field(default=DEFAULT_SITE, description="Which version of the site to serve.")
    line_delay_seconds: float = Field(default=0.0, ge=0, description="Pause after every line.")
    recaptcha_mint_seconds: float = Field(
        default=0.17, ge=0, description="How long the page's grecaptcha takes to mint a token."
    )
    token_ttl_seconds: float = Field(default=120.0, gt=0, description="Life of a token.")
    signed_url_seconds: int = Field(default=3600, ge=1, description="Life of a signed storage URL.")
    login_gate: bool = Field(default=False, description="Guests get 401 LOGIN_GATE in direct mode.")
    cloudflare: bool = Field(
        default=False, description="Every page and endpoint is the interstitial until cleared."
    )
    auth_cookie: Literal["split", "single"] = Field(
        default="split", description="What sign-in sets: `.0` and `.1`, or one cookie."
    )
    catalog: list[dict[str, Any]] | None = Field(
        default=None,
        description="The catalog to serve instead of the site's: initialModels entries (2025-12) "
        "or arena groups (2026-10).",
    )
    unselectable: list[str] = Field(
        default_factory=list, description="Public names served with userSelectable false."
    )
    missing_models: dict[str, list[str]] = Field(
        default_factory=dict, description="Account key -> public names that account lacks."
    )
    rsc_chunk_chars: int = Field(
        default=0,
        ge=0,
        description="Split the page's RSC text into pushes of this size (0: per row).",
    )
    rsc_catalog: bool = Field(default=True, description="The page's RSC carries initialModels.")
    catalog_endpoint: Literal["ok", "absent", "broken"] = Field(
        default="ok",
        description="GET /nextjs-api/model-catalog (2026-10) works, is gone, or is cut.",
    )
    recaptcha_site_key: str | None = Field(
        default=None, description="The reCAPTCHA site key in the page; null: the site's."
    )
    missing_actions: list[ActionName] = Field(
        default_factory=list, description="Server actions this build lacks (chunk and server)."
    )
    step_lines: bool = Field(default=False, description="Answers carry `f` and `e` lines.")
    heartbeat_lines: int = Field(
        default=0, ge=0, description="Heartbeats each side sends before its first content line."
    )
    flag: FlagRule | None = Field(default=None, description="When an account gets flagged.")
    replies: list[Reply] = Field(default_factory=list, description="Scripted answer texts.")
    failures: list[Failure] = Field(default_factory=list)

    @model_validator(mode="after")
    def _catalog_fits_the_site(self) -> Scenario:
        grouped = self.new_site
        for item in self.catalog or ():
            entries = item.get("models") if grouped else [item]
            if (grouped and not isinstance(item.get("arena"), str)) or not isinstance(
                entries, list
            ):
                raise ValueError('a 2026-10 catalog is a list of {"arena", "models"} groups')
            if not all(
                isinstance(entry, dict) and isinstance(entry.get("id"), str) for entry in entries
            ):
                raise ValueError("every catalog entry needs an id")
        return self

    @property
    def new_site(self) -> bool:
        """Whether this is the 2026 site (else the captured one)."""
        return self.site == NEW_SITE

    def scripted(self, prompt: str) -> str | None:
        """The text of the first scripted reply whose regex is found in this user message."""
        return next((reply.text for reply in self.replies if re.search(reply.match, prompt)), None)

    def merged(self, update: dict[str, Any]) -> Scenario:
        """This scenario with the given keys replaced (validated like a new one)."""
        return Scenario.model_validate({**self.model_dump(), **update})
