"""Metrics and usage: what a job's events add up to, how usage rows read, what /metrics shows."""

from __future__ import annotations

from datetime import date

import httpx
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families

from gateway.access.usage import Tally, UsageRow, rows_of
from gateway.http.metrics import FleetSnapshot, HttpMetrics, Metrics, render
from shared import events


def samples(text: bytes) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text.decode())
        for s in family.samples
    }


def test_a_tally_counts_tokens_only_of_an_answer() -> None:
    tally = Tally("p" * 40)
    tally.add([events.accepted("w", 0)])
    assert (tally.answered, tally.tokens(), tally.first_content_at) == (False, (0, 0), None)
    tally.add([events.reasoning("a", "r" * 8), events.text("a", "t" * 12)])
    tally.add([events.finish("a", "stop"), events.done()])
    assert tally.answered and tally.first_content_at is not None
    assert tally.tokens() == (10, 5) and tally.error is None


def test_a_tally_prefers_the_arenas_counts_and_keeps_the_error() -> None:
    tally = Tally("prompt")
    tally.add(
        [
            events.text("a", "x"),
            events.finish("a", "stop", {"promptTokens": 7, "completionTokens": 3}),
        ]
    )
    assert tally.tokens() == (7, 3)
    tally.add([events.error("upstream", "broke")])
    assert tally.error == "upstream"


def test_usage_rows_group_a_days_fields_by_key_and_model() -> None:
    fields = {
        b"k1|gpt|x|requests": b"3",  # a model name with the separator in it
        b"k1|gpt|x|prompt_tokens": b"30",
        b"anonymous|m|requests": b"1",
        b"anonymous|m|errors": b"1",
        b"k1|gpt|x|unknown_metric": b"9",
    }
    assert rows_of(date(2026, 1, 2), fields) == [
        UsageRow("2026-01-02", "anonymous", "m", requests=1, errors=1),
        UsageRow("2026-01-02", "k1", "gpt|x", requests=3, prompt_tokens=30),
    ]


def test_the_fleet_snapshot_is_exported_with_every_state() -> None:
    snapshot = FleetSnapshot(
        workers={"ready": 2, "challenge": 1},
        queues={"shared": 4, "w1": 0},
        counters={
            "arena_error:rate_limited": 3,
            "arena_error:recaptcha": 2,
            "recaptcha_failure": 5,
        },
    )
    found = samples(render(Metrics(), snapshot))
    assert found[("lmb_workers", (("state", "ready"),))] == 2
    assert found[("lmb_workers", (("state", "challenge"),))] == 1
    assert found[("lmb_workers", (("state", "busy"),))] == 0
    assert found[("lmb_queue_depth", (("queue", "shared"),))] == 4
    assert found[("lmb_arena_errors_total", (("kind", "rate_limited"),))] == 3
    assert found[("lmb_arena_errors_total", (("kind", "recaptcha"),))] == 2
    assert found[("lmb_recaptcha_failures_total", ())] == 5


def test_each_account_is_exported_with_its_state_and_its_calls() -> None:
    snapshot = FleetSnapshot({}, {}, {}, accounts={"w1": ("flagged", 7), "w2": ("ready", 0)})
    found = samples(render(Metrics(), snapshot))
    assert found[("lmb_account_state", (("state", "flagged"), ("worker", "w1")))] == 1
    assert found[("lmb_account_state", (("state", "ready"), ("worker", "w1")))] == 0
    assert found[("lmb_account_state", (("state", "ready"), ("worker", "w2")))] == 1
    assert sum(v for (name, labels), v in found.items() if name == "lmb_account_state") == 2
    assert found[("lmb_account_calls_total", (("worker", "w1"),))] == 7
    assert found[("lmb_account_calls_total", (("worker", "w2"),))] == 0


async def test_requests_are_counted_by_route_template_and_status() -> None:
    metrics = Metrics()
    app = FastAPI()

    @app.get("/things/{name}")
    async def thing(name: str) -> dict[str, str]:
        return {"name": name}

    app.add_middleware(HttpMetrics, metrics=metrics)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        for path in ("/things/a", "/things/b", "/nowhere/1", "/nowhere/2"):
            await client.get(path)
    found = samples(render(metrics, FleetSnapshot({}, {}, {})))
    ok = (("method", "GET"), ("route", "/things/{name}"), ("status", "200"))
    missing = (("method", "GET"), ("route", "unmatched"), ("status", "404"))
    assert found[("lmb_http_requests_total", ok)] == 2
    assert found[("lmb_http_requests_total", missing)] == 2
    assert found[("lmb_http_request_duration_seconds_count", (("route", "/things/{name}"),))] == 2
