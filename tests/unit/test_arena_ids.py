from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime

import pytest

from shared.arena.ids import uuid7, uuid7_ascending, uuid7_time_ms
from tests.unit.test_arena_captures import STREAMS, capture

CANONICAL_V7 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


def _captured_ids() -> list[str]:
    ids = []
    for name in STREAMS:
        body = capture(name)["request"]["body"]
        ids += [body[key] for key in ("id", "userMessageId", "modelAMessageId") if key in body]
    return ids


def test_layout_is_canonical_lowercase_v7() -> None:
    for _ in range(1000):
        value = uuid7()
        assert CANONICAL_V7.match(value), value
        parsed = uuid.UUID(value)
        assert parsed.version == 7
        assert parsed.variant == uuid.RFC_4122


def test_timestamp_round_trips_at_the_edges_of_48_bits() -> None:
    for ms in (0, 1, 1_762_500_000_000, 2**48 - 1):
        value = uuid7(ms)
        assert uuid7_time_ms(value) == ms
        assert int(value.replace("-", "")[:12], 16) == ms


@pytest.mark.parametrize("ms", [-1, 2**48])
def test_timestamp_outside_48_bits_is_refused(ms: int) -> None:
    with pytest.raises(ValueError):
        uuid7(ms)


def test_default_timestamp_is_now() -> None:
    before = time.time_ns() // 1_000_000
    value = uuid7()
    after = time.time_ns() // 1_000_000
    assert before <= uuid7_time_ms(value) <= after


def test_ids_in_one_millisecond_differ_in_their_random_bits() -> None:
    values = [uuid7(1_762_500_000_000) for _ in range(5000)]
    assert len(set(values)) == len(values)
    # Both random fields vary: rand_a (12 bits) and rand_b (62 bits).
    assert len({v[15:18] for v in values}) > 1000
    assert len({v[19:] for v in values}) == len(values)


def test_later_milliseconds_sort_later_as_text() -> None:
    values = [uuid7(ms) for ms in range(1_762_500_000_000, 1_762_500_000_200)]
    assert sorted(values) == values


def test_ids_made_together_ascend_within_their_millisecond() -> None:
    for _ in range(200):
        values = uuid7_ascending(4, 1_762_500_000_000)
        assert len(set(values)) == 4
        assert [uuid.UUID(v).int for v in values] == sorted(uuid.UUID(v).int for v in values)
        assert {uuid7_time_ms(v) for v in values} == {1_762_500_000_000}
    before = time.time_ns() // 1_000_000
    assert before <= uuid7_time_ms(uuid7_ascending(1)[0]) <= time.time_ns() // 1_000_000


def test_reads_the_time_of_the_ids_the_site_made() -> None:
    recorded = {
        "019a5c4d-0173-726a-9757-94a8f22f76d7": "2025-11-07",  # new.json session
        "019ad876-a1f8-7977-baeb-edcdef0ed049": "2025-12-01",  # image.json answer
    }
    for value, day in recorded.items():
        moment = datetime.fromtimestamp(uuid7_time_ms(value) / 1000, UTC)
        assert moment.date().isoformat() == day
    # The generated image was stored (key prefix: Unix ms) within a minute of the answer's id.
    stored_ms = 1764568271129
    assert 0 < stored_ms - uuid7_time_ms("019ad876-a1f8-7977-baeb-edcdef0ed049") < 60_000
    for value in _captured_ids():
        assert CANONICAL_V7.match(value)
        assert 1_760_000_000_000 < uuid7_time_ms(value) < 1_770_000_000_000


@pytest.mark.parametrize(
    "value",
    [
        str(uuid.uuid4()),
        "9217ac2d-91bc-4391-aa07-b8f9e2cf11f2",  # a v4 catalog id from the captures
        "019a5c4d-0173-726a-1757-94a8f22f76d7",  # v7 nibble, wrong variant bits
        "019a5c4d-0173-626a-9757-94a8f22f76d7",  # version 6
        "not-a-uuid",
        "",
    ],
)
def test_anything_but_a_v7_is_refused(value: str) -> None:
    with pytest.raises(ValueError):
        uuid7_time_ms(value)
