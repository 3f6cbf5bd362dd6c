"""A worker's published status: what gateways and the admin page read from its heartbeat."""

from __future__ import annotations

from enum import StrEnum

import orjson
from pydantic import BaseModel, Field


class WorkerState(StrEnum):
    STARTING = "starting"
    READY = "ready"  # signed-in page, free capacity
    BUSY = "busy"  # every slot in use; will take jobs again
    CHALLENGE = "challenge"  # Cloudflare/Turnstile: a human must solve it
    LOGIN_REQUIRED = "login_required"
    RATE_LIMITED = "rate_limited"  # until `WorkerStatus.until`
    RESTARTING = "restarting"  # browser died or hung
    STOPPED = "stopped"


#: States in which a worker will serve queued jobs, now or as soon as a slot frees.
SERVING = frozenset({WorkerState.READY, WorkerState.BUSY})


class WorkerStatus(BaseModel):
    id: str
    state: WorkerState
    queue: str = Field(description="The worker's own arq queue.")
    account: str | None = None
    capacity: int
    busy: int = 0
    models: list[str] = Field(default_factory=list, description="Public names it can serve.")
    novnc_url: str | None = None
    last_error: str | None = None
    until: float | None = Field(default=None, description="Unix time a rate limit ends.")
    updated_at: float

    @property
    def serving(self) -> bool:
        return self.state in SERVING

    def dump(self) -> bytes:
        return orjson.dumps(self.model_dump(mode="json"))

    @classmethod
    def load(cls, data: bytes) -> WorkerStatus:
        return cls.model_validate(orjson.loads(data))
