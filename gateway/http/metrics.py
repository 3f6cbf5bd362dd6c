"""Prometheus metrics: this gateway's own, and the fleet's as Redis holds them at scrape time.

A gateway counts what passes through it (requests, time to first token, time in the queue,
tokens, limit refusals): sum those across gateways. Workers cannot be scraped (they serve
nothing), so what they count (arena errors by kind, reCAPTCHA failures) sits in a Redis hash;
that, queue depth and workers by state are the same on every gateway: aggregate them with
`max`, not `sum`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from redis.asyncio import Redis
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.access.addresses import is_local
from gateway.admin.sign_in import require_admin
from gateway.fleet.heartbeats import read_fleet, state_counts
from gateway.http.errors import ApiError
from shared.fleet.counters import ARENA_ERROR, RECAPTCHA_FAILURE
from shared.fleet.worker_status import WorkerState
from shared.storage import redis_keys

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds: from a few hundred milliseconds (a warm worker) to minutes (a long reasoning answer).
_LATENCY_BUCKETS = (0.1, 0.25, 0.5, 1, 2, 3, 5, 10, 20, 30, 60, 120, 300, 600)
#: Seconds: from a free account taking a job at once to one waiting out several paced accounts.
_QUEUE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 45, 90, 180, 300, 600)


class Metrics:
    """This gateway's metrics, in a registry of its own (no process-global state)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "lmb_http_requests",
            "HTTP requests answered, by route and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.request_seconds = Histogram(
            "lmb_http_request_duration_seconds",
            "Time from a request to the end of its response (the whole stream, if streamed).",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.first_token_seconds = Histogram(
            "lmb_time_to_first_token_seconds",
            "Time from a completion request to the first content of its answer.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.answer_seconds = Histogram(
            "lmb_answer_duration_seconds",
            "Time from a completion request to the end of its answer.",
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.queue_wait_seconds = Histogram(
            "lmb_queue_wait_seconds",
            "Time from a job's enqueue to a worker taking it (an account with room that has"
            " its models).",
            buckets=_QUEUE_BUCKETS,
            registry=self.registry,
        )
        self.tokens = Counter(
            "lmb_tokens",
            "Tokens of answered completions (the arena's counts, else estimates).",
            ["kind", "model"],
            registry=self.registry,
        )
        self.refusals = Counter(
            "lmb_limit_refusals",
            "Requests refused by a key's limit (429), by limit.",
            ["limit"],
            registry=self.registry,
        )


class HttpMetrics:
    """ASGI middleware: count each request by route template and status, and time it."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500  # what the client gets if the app fails before answering

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            # The router leaves the matched route in the scope; its template keeps the label
            # set small whatever paths clients try.
            route = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.request_seconds.labels(route).observe(time.perf_counter() - started)


@dataclass(frozen=True, slots=True)
class FleetSnapshot:
    """What the fleet looks like in Redis at one moment."""

    workers: Mapping[str, int]
    queues: Mapping[str, int]
    counters: Mapping[str, int]
    #: Each live worker's account: its state, and the stream calls it made since its worker
    #: started (a counter that starts over with the worker, as a process's counters do).
    accounts: Mapping[str, tuple[str, int]] = field(default_factory=dict)


async def read_snapshot(redis: Redis) -> FleetSnapshot:
    fleet = await read_fleet(redis)
    names = {"shared": redis_keys.SHARED_QUEUE} | {s.id: s.queue for s in fleet}
    async with redis.pipeline(transaction=False) as pipe:
        for queue in names.values():
            pipe.zcard(queue)
        pipe.hgetall(redis_keys.COUNTERS)
        *depths, counters = await pipe.execute()
    return FleetSnapshot(
        workers=state_counts(fleet),
        queues=dict(zip(names, depths, strict=True)),
        counters={name.decode(): int(value) for name, value in counters.items()},
        accounts={s.id: (s.state.value, s.calls) for s in fleet},
    )


class SnapshotCollector(Collector):
    """A `FleetSnapshot` as metric families."""

    def __init__(self, snapshot: FleetSnapshot) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot
        workers = GaugeMetricFamily(
            "lmb_workers", "Workers with a live heartbeat, by state.", labels=["state"]
        )
        for state in WorkerState:
            workers.add_metric([state.value], snap.workers.get(state.value, 0))
        yield workers
        queues = GaugeMetricFamily(
            "lmb_queue_depth",
            "Jobs waiting in a queue (the shared one, or a worker's own).",
            labels=["queue"],
        )
        for name, depth in sorted(snap.queues.items()):
            queues.add_metric([name], depth)
        yield queues
        arena = CounterMetricFamily(
            "lmb_arena_errors",
            "Requests the arena refused or failed, by kind (all workers).",
            labels=["kind"],
        )
        for name, count in sorted(snap.counters.items()):
            if name.startswith(ARENA_ERROR):
                arena.add_metric([name.removeprefix(ARENA_ERROR)], count)
        yield arena
        yield CounterMetricFamily(
            "lmb_recaptcha_failures",
            "reCAPTCHA tokens the arena refused (all workers).",
            value=snap.counters.get(RECAPTCHA_FAILURE, 0),
        )
        states = GaugeMetricFamily(
            "lmb_account_state",
            "Each live worker's account in its state: 1 for the state it is in, 0 for the others.",
            labels=["worker", "state"],
        )
        calls = CounterMetricFamily(
            "lmb_account_calls",
            "Stream calls each worker's account made since the worker started.",
            labels=["worker"],
        )
        for worker, (now_in, made) in sorted(snap.accounts.items()):
            for state in WorkerState:
                states.add_metric([worker, state.value], int(state.value == now_in))
            calls.add_metric([worker], made)
        yield states
        yield calls


def render(metrics: Metrics, snapshot: FleetSnapshot) -> bytes:
    fleet = CollectorRegistry()
    fleet.register(SnapshotCollector(snapshot))
    return generate_latest(metrics.registry) + generate_latest(fleet)


async def require_metrics_access(request: Request) -> None:
    """The admin key when one is set; without one, only this machine's own requests (never one
    a proxy passed on, even from loopback)."""
    if request.app.state.settings.admin_key is not None:
        await require_admin(request)
    elif not is_local(request):
        raise ApiError(
            403,
            "/metrics is served only to this machine without LMB_ADMIN_KEY: set one, and send it"
            " as a bearer token.",
            code="metrics_local_only",
        )


router = APIRouter()


@router.get("/metrics", dependencies=[Depends(require_metrics_access)], include_in_schema=False)
async def metrics(request: Request) -> Response:
    services = request.app.state.services
    snapshot = await read_snapshot(services.redis)
    return Response(render(services.metrics, snapshot), media_type=CONTENT_TYPE)
