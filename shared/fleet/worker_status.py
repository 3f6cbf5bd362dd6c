"""A worker's published status: what gateways and the admin page read from its heartbeat."""

from __future__ import annotations

from collections.abc import Awaitable
from enum import StrEnum
from typing import cast

import orjson
from pydantic import BaseModel, Field, ValidationError
from redis.asyncio import Redis

from shared.storage import redis_keys


class WorkerState(StrEnum):
    STARTING = "starting"
    READY = "ready"  # signed-in page, free capacity
    BUSY = "busy"  # every slot in use; will take jobs again
    CHALLENGE = "challenge"  # Cloudflare/Turnstile: a human must solve it
    LOGIN_REQUIRED = "login_required"
    COOLING = "cooling"  # the arena's 429: the account rests until `WorkerStatus.until`
    FLAGGED = "flagged"  # the site's security check: a person passes it, or a probe at `next_try`
    UNREACHABLE = "unreachable"  # the arena did not load; tried again at `WorkerStatus.next_try`
    UNRECOGNISED = "unrecognised"  # it loaded, but not as the bridge knows it; tried again too
    RESTARTING = "restarting"  # browser died or hung
    STOPPED = "stopped"


#: States in which a worker will serve queued jobs, now or as soon as a slot frees.
SERVING = frozenset({WorkerState.READY, WorkerState.BUSY})


class WorkerStatus(BaseModel):
    id: str
    state: WorkerState
    queue: str = Field(description="The worker's own arq queue.")
    account: str | None = Field(default=None, description="The arena account signed in, if any.")
    capacity: int
    busy: int = 0
    models: list[str] = Field(default_factory=list, description="Public names it can serve.")
    catalog: str | None = Field(
        default=None,
        description="Digest of the catalog it serves (`shared.storage.redis_keys.catalog`).",
    )
    novnc_url: str | None = Field(
        default=None, description="Its noVNC (websockify) on a private address, for gateways only."
    )
    vnc_salt: str | None = Field(
        default=None,
        description="Random per start; the VNC password derives from it and the admin key"
        " (`shared.credentials.vnc.password`), so this status never holds a secret.",
    )
    last_error: str | None = None
    reason: str | None = Field(
        default=None, description="Why it is in its state, in one line (`shared.fleet.diagnosis`)."
    )
    check: str | None = Field(
        default=None, description="The doctor check it fails, while it cannot serve for one."
    )
    until: float | None = Field(default=None, description="Unix time cooling ends.")
    next_try: float | None = Field(
        default=None,
        description="Unix time the arena is tried again (unreachable, unrecognised; flagged: one"
        " call alone), or the next browser is started (restarting after browsers that never"
        " served).",
    )
    catalog_source: str | None = Field(
        default=None, description="Where it read the catalog: the catalog endpoint, or the page."
    )
    chat_mode: str | None = Field(
        default=None, description="The mode the arena took for its last new chat."
    )
    calls: int = Field(
        default=0, description="Stream calls its account made since the worker started."
    )
    egress: str | None = Field(
        default=None,
        description="The address the arena sees the account come from (LMB_EGRESS_PROBE_URL).",
    )
    proxy: str | None = Field(
        default=None, description="The account's own proxy, without its credentials."
    )
    credits: float | None = Field(
        default=None, description="The account's credits, when the site shows them."
    )
    updated_at: float

    @property
    def serving(self) -> bool:
        return self.state in SERVING

    def free_in(self, now: float, *, paced_s: float) -> float | None:
        """Seconds until its account may take a job: once its pacing lets it make a call (in
        `paced_s`, as its record in Redis says) and any cooling is over; None while it cannot
        until something else happens (a person, the arena, a restart, a flag's end)."""
        cooling = self.state is WorkerState.COOLING
        if not (self.serving or cooling):
            return None
        rest = (self.until or now) - now if cooling else 0.0
        return max(0.0, paced_s, rest)

    def dump(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def load(cls, data: bytes) -> WorkerStatus:
        return cls.model_validate(orjson.loads(data))


async def read_roster(redis: Redis) -> tuple[list[WorkerStatus], list[str]]:
    """Workers with a live heartbeat, and the ids of those whose heartbeat stopped (gone)."""
    members = await cast(Awaitable[set[bytes]], redis.smembers(redis_keys.WORKERS))
    ids = sorted(member.decode() for member in members)
    if not ids:
        return [], []
    beats = await redis.mget([redis_keys.worker_heartbeat(worker_id) for worker_id in ids])
    live, gone = [], []
    for worker_id, beat in zip(ids, beats, strict=True):
        if beat is None:
            gone.append(worker_id)
            continue
        try:
            live.append(WorkerStatus.load(beat))
        except (ValidationError, ValueError):
            continue  # a heartbeat from an incompatible version counts as not serving
    return live, gone


async def read_fleet(redis: Redis) -> list[WorkerStatus]:
    """Every worker with a live heartbeat; ids whose heartbeat expired are dead and left out."""
    return (await read_roster(redis))[0]
