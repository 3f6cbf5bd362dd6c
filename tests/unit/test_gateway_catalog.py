from __future__ import annotations

import json
import time

import orjson
import pytest
from redis.asyncio import Redis

from gateway.fleet.catalog_view import CatalogView, parse_catalog
from shared.arena.catalog import from_groups, from_page
from shared.fleet.worker_status import WorkerState, WorkerStatus
from shared.storage import redis_keys
from tests.fakearena.catalog import CAPTURED_CATALOG as CAPTURE
from tests.fakearena.catalog import REPORTED_CATALOG as REPORTED
from worker.arena import catalog_publisher as worker_catalog


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    return json.loads(CAPTURE.read_text())["initialModels"]


def stored(entries: list[dict], updated_at: float = 1_764_547_200.5) -> bytes:
    """The captured catalog as a worker stores it."""
    models = [model.published() for model in from_page(entries)]
    return orjson.dumps({"updated_at": updated_at, "models": models})


def is_video(entry: dict) -> bool:
    outputs = entry["capabilities"]["outputCapabilities"]
    return bool(outputs.get("video")) and not outputs.get("text")


def test_the_listed_models_are_the_named_ones_in_catalog_order(entries: list[dict]) -> None:
    catalog = parse_catalog(stored(entries))
    expected = [e["publicName"] for e in entries if e.get("organization") and not is_video(e)]
    assert [m.public_name for m in catalog.listed()] == expected
    assert len(expected) > 150  # the capture holds 288 models, 93 of them anonymous


def test_anonymous_models_are_not_listed_but_can_be_found(entries: list[dict]) -> None:
    catalog = parse_catalog(stored(entries))
    anonymous = [e for e in entries if not e.get("organization") and not is_video(e)]
    assert anonymous
    for entry in anonymous:
        model = catalog.find(entry["publicName"])
        assert model is not None and model.id == entry["id"] and model.anonymous
        assert model not in catalog.listed()


def test_a_model_is_found_by_its_public_name_with_its_arena_id(entries: list[dict]) -> None:
    catalog = parse_catalog(stored(entries))
    model = catalog.find("gemini-3-pro")
    assert model is not None
    assert (model.id, model.organization, model.modality) == (
        "019a98f7-afcd-779f-8dcb-856cc3b3f078",
        "google",
        "chat",
    )
    assert catalog.find("gemini-3") is None
    assert catalog.updated_at == 1_764_547_200.5


def test_a_catalog_read_off_the_endpoint_carries_an_id_per_modality() -> None:
    groups = json.loads(REPORTED.read_text())
    models = [model.published() for model in from_groups(groups)]
    catalog = parse_catalog(orjson.dumps({"updated_at": 1.0, "models": models}))
    grok = catalog.find("grok-4.3")
    assert grok is not None and set(grok.ids) == {"chat", "search"}
    assert grok.id == grok.ids["chat"] != grok.ids["search"]
    listed = {m.public_name for m in catalog.listed()}
    named = {g["arena"]: {e["publicName"] for e in g["models"]} for g in groups}
    video_only = named["text-to-video"] - set().union(
        *(names for arena, names in named.items() if arena != "text-to-video")
    )
    assert listed and video_only and not listed & video_only  # /v1/models shows no video model


def test_an_empty_catalog() -> None:
    catalog = parse_catalog(orjson.dumps({"updated_at": 5, "models": []}))
    assert catalog.listed() == [] and catalog.find("x") is None


async def test_a_view_without_a_catalog_or_the_model_asked_for_is_read_again(redis: Redis) -> None:
    cache = CatalogView(redis, ttl_s=60)  # a view that would otherwise be believed for a minute
    assert await cache.get() is None
    models = json.loads(CAPTURE.read_text())["initialModels"]
    first, rest = models[:1], models[1:]
    await publish(redis, "w1", first)
    found = await cache.get()  # the first worker published since the last read
    assert found is not None and list(found.models) == [first[0]["publicName"]]

    await publish(redis, "w2", rest)
    assert await cache.get() is found  # fresh, and nothing asked for that it lacks
    wanted = rest[0]["publicName"]
    assert wanted in (await cache.get(wanted)).models


async def publish(redis: Redis, worker_id: str, entries: list[dict]) -> None:
    models = from_page(entries)
    await worker_catalog.publish(redis, models, "page", now=time.time())
    status = WorkerStatus(
        id=worker_id,
        state=WorkerState.READY,
        queue=redis_keys.worker_queue(worker_id),
        capacity=4,
        catalog=worker_catalog.digest(models),
        updated_at=time.time(),
    )
    await redis.set(redis_keys.worker_heartbeat(worker_id), status.dump(), ex=60)
    await redis.sadd(redis_keys.WORKERS, worker_id)
