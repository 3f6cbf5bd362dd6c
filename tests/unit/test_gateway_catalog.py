from __future__ import annotations

import json
from pathlib import Path

import orjson
import pytest

from gateway.catalog import parse_catalog

CAPTURE = Path("/work/shared/arena-protocol/captures/model-catalog-2025-12-01.json")


@pytest.fixture(scope="module")
def entries() -> list[dict]:
    return json.loads(CAPTURE.read_text())["initialModels"]


def stored(entries: list[dict], updated_at: float = 1_764_547_200.5) -> bytes:
    return orjson.dumps({"updated_at": updated_at, "worker": "w1", "models": entries})


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


def test_an_empty_catalog() -> None:
    catalog = parse_catalog(orjson.dumps({"updated_at": 5, "worker": "w", "models": []}))
    assert catalog.listed() == [] and catalog.find("x") is None
