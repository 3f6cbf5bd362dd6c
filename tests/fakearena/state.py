"""Everything the fake remembers: sessions, tokens, streams, the request log, the scenario."""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from tests.fakearena import pages
from tests.fakearena.accounts import Standing
from tests.fakearena.catalog import Catalog, Model, captured_models, reported_groups
from tests.fakearena.replies import Side, text_of
from tests.fakearena.scenario import STATUS_FAILURES, ActionName, Endpoint, Failure, Scenario
from tests.fakearena.storage import Bucket

SITE_KEY = "6LeTGMcsAAAAALuIlkVwIxaAuZA8VledA6d3Nnb0"
_TOKENS_BEFORE_PRUNING = 10_000
#: Server actions the page's JS chunk references, with the id prefix the site's ids had.
ACTIONS: dict[ActionName, str] = {
    "updateTouConsent": "40",
    "generateUploadUrl": "70",
    "getSignedUrl": "60",
    "getHistory": "70",
    "deleteEvaluationSession": "60",
    "archiveEvaluationSession": "60",
}
#: Actions only the 2026 site's build has.
NEW_ACTIONS = frozenset({"deleteEvaluationSession", "archiveEvaluationSession"})


@dataclass
class Turn:
    user_message_id: str
    text: str
    modality: str
    attachments: list[dict[str, Any]]
    models: dict[Side, Model]  # side -> the model that answers
    message_ids: dict[Side, str]  # side -> model message id
    retries: dict[Side, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "user_message_id": self.user_message_id,
            "text": self.text,
            "modality": self.modality,
            "attachments": self.attachments,
            "models": {side: model.id for side, model in self.models.items()},
            "message_ids": self.message_ids,
            "retries": self.retries,
        }


@dataclass
class Session:
    id: str
    owner: str  # Identity.key
    owner_id: str  # the user id the site names in its errors
    mode: str
    turns: list[Turn] = field(default_factory=list)
    state: Literal["active", "archived", "deleted"] = "active"

    def find(self, model_message_id: str) -> tuple[int, Side] | None:
        """(turn index, side) of a model message of this session."""
        for index, turn in enumerate(self.turns):
            for side, message_id in turn.message_ids.items():
                if message_id == model_message_id:
                    return index, side
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "owner": self.owner,
            "mode": self.mode,
            "state": self.state,
            "turns": [turn.to_json() for turn in self.turns],
        }


@dataclass
class StreamRecord:
    """One streamed answer, as sent: what a client should have received."""

    endpoint: Endpoint
    session_id: str
    user_message_id: str
    message_ids: dict[Side, str]
    models: dict[Side, str]  # side -> public name
    outcome: str  # what it ends as if nothing interrupts it: finished, cut, error, empty
    lines: list[str] = field(default_factory=list)
    sent_at: list[float] = field(default_factory=list)  # Unix time each line was handed over
    status: str = "running"
    interrupted: bool = False
    _wake: asyncio.Future[None] | None = field(default=None, repr=False)

    def interrupt(self, status: str) -> None:
        """End the stream before its next line (`stopped` by the site, `disconnected`)."""
        if self.status == "running" and not self.interrupted:
            self.status = status
            self.interrupted = True
            if self._wake is not None and not self._wake.done():
                self._wake.set_result(None)

    async def pause(self, seconds: float) -> None:
        """Sleep between lines, waking early if interrupted."""
        # A bare future and timer, as asyncio.sleep uses: wait_for would cost a task per line.
        loop = asyncio.get_running_loop()
        self._wake = loop.create_future()
        timer = loop.call_later(seconds, _wake_up, self._wake)
        try:
            await self._wake
        finally:
            timer.cancel()

    def close(self) -> None:
        if self.status == "running":
            self.status = self.outcome

    def to_json(self) -> dict[str, Any]:
        return {
            "endpoint": self.endpoint,
            "session_id": self.session_id,
            "user_message_id": self.user_message_id,
            "message_ids": self.message_ids,
            "models": self.models,
            "status": self.status,
            "lines": self.lines,
            "sent_at": self.sent_at,
            "text": {side: text_of(self.lines, side) for side in self.message_ids},
            "reasoning": {side: text_of(self.lines, side, "g") for side in self.message_ids},
        }


def _wake_up(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


@dataclass(frozen=True, slots=True)
class Token:
    action: str  # a v3 token's; a v2 token has none
    minted_at: float  # time.monotonic()
    version: int = 3  # Enterprise v3 (minted by execute) or v2 (a passed checkbox)


class Arena:
    """The fake's whole state. Action ids and the build id live as long as the process."""

    def __init__(self, scenario: Scenario) -> None:
        self.initial = scenario
        self.build_id = secrets.token_hex(8)
        self.action_ids = {name: prefix + secrets.token_hex(20) for name, prefix in ACTIONS.items()}
        self.reset()

    def reset(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.used_ids: set[str] = set()
        self.tokens: dict[str, Token] = {}
        self.requests: list[dict[str, Any]] = []
        self.streams: list[StreamRecord] = []
        #: The latest stream of each (session id, model message id), for the stop endpoint.
        self.by_message: dict[tuple[str, str], StreamRecord] = {}
        self.stream_counts: dict[str, int] = {}
        self.challenge_nonces: set[str] = set()
        self.clearances: set[str] = set()
        self.v2_nonces: set[str] = set()
        self.standing = Standing()
        self.bucket = Bucket()
        self._apply(self.initial)

    @property
    def site_key(self) -> str:
        """The reCAPTCHA site key the page renders and the stand-in accepts."""
        return self.scenario.recaptcha_site_key or SITE_KEY

    def actions(self) -> dict[str, ActionName]:
        """The server actions of the build being served, by id."""
        missing = set(self.scenario.missing_actions)
        if not self.scenario.new_site:
            missing |= NEW_ACTIONS
        return {
            action_id: name for name, action_id in self.action_ids.items() if name not in missing
        }

    def chunks(self) -> dict[str, str]:
        """The page's JS chunks by path; their names change with the build, as on the site."""
        return {
            f"/_next/static/chunks/app/page-{self.build_id}.js": pages.server_reference_chunk(
                self.actions()
            ),
            f"/_next/static/chunks/main-app-{self.build_id}.js": pages.UI_JS,
        }

    def set_scenario(self, scenario: Scenario) -> None:
        if scenario.cloudflare and not self.scenario.cloudflare:
            self.clearances.clear()  # switching the challenge on catches every browser again
        self._apply(scenario)

    def _apply(self, scenario: Scenario) -> None:
        self.scenario = scenario
        if scenario.new_site:
            groups = scenario.catalog if scenario.catalog is not None else reported_groups()
            self.catalog = Catalog.from_groups(groups)
        else:
            entries = scenario.catalog if scenario.catalog is not None else captured_models()
            self.catalog = Catalog.from_entries(entries)
        # [requests seen, requests failed] per failure, counted from now; calls towards a flag too
        self.failure_counts = [[0, 0] for _ in scenario.failures]
        self.standing.calls.clear()

    def next_failure(
        self, endpoint: Endpoint, account: str | None, *, status: bool
    ) -> Failure | None:
        """The injected status (or stream) failure for this request of `account`, if any.

        Each failure counts its own matches: a status failure every request to its endpoint (of
        its account), a stream failure only those that passed every check and are about to stream.
        """
        chosen = None
        for failure, counts in zip(self.scenario.failures, self.failure_counts, strict=True):
            if (
                not failure.matches(endpoint, account)
                or (failure.kind in STATUS_FAILURES) != status
            ):
                continue
            counts[0] += 1
            due = counts[0] > failure.after and (failure.times is None or counts[1] < failure.times)
            if due and chosen is None:
                counts[1] += 1
                chosen = failure
        return chosen

    def mint_token(self, action: str, version: int = 3) -> str:
        if len(self.tokens) >= _TOKENS_BEFORE_PRUNING:
            self._drop_expired_tokens()
        token = "03AF" + secrets.token_urlsafe(96)
        self.tokens[token] = Token(action, time.monotonic(), version)
        return token

    def take_token(self, token: object, action: str, version: int = 3) -> bool:
        """Spend a token: it must exist, be unused, fresh, of `version` and minted for `action`."""
        found = self.tokens.pop(token, None) if isinstance(token, str) else None
        return (
            found is not None
            and (found.version, found.action) == (version, action)
            and time.monotonic() - found.minted_at < self.scenario.token_ttl_seconds
        )

    def _drop_expired_tokens(self) -> None:
        oldest = time.monotonic() - self.scenario.token_ttl_seconds
        self.tokens = {key: token for key, token in self.tokens.items() if token.minted_at > oldest}

    def count_stream(self, who: str) -> int:
        self.stream_counts[who] = self.stream_counts.get(who, 0) + 1
        return self.stream_counts[who]

    def log(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "streams": [record.to_json() for record in self.streams],
            "sessions": [session.to_json() for session in self.sessions.values()],
        }
