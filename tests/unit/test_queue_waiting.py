"""What a queued request is told: when the accounts that have its model free, its expected
wait, the comments it gets, and the refusals when no account can take it in time."""

from __future__ import annotations

import pytest

from gateway.fleet.waiting import (
    Account,
    account,
    describe,
    expected_wait,
    progress,
    refusal,
)
from shared.fleet.worker_status import WorkerState, WorkerStatus

NOW = 1_800_000_000.0


def status(state: WorkerState, **fields: object) -> WorkerStatus:
    return WorkerStatus.model_validate(
        {"id": "w1", "state": state, "queue": "q:w1", "capacity": 2, "updated_at": NOW, **fields}
    )


def test_the_first_job_waits_for_the_first_account_to_free() -> None:
    assert expected_wait([30.0, 10.0, 20.0], interval_s=45, ahead=0) == 10.0


def test_each_job_ahead_takes_the_next_free_turn_of_some_account() -> None:
    # Two accounts, free now and in 10 s, each then every 45 s: turns at 0, 10, 45, 55, 90, …
    turns = [expected_wait([0.0, 10.0], interval_s=45, ahead=n) for n in range(5)]
    assert turns == [0.0, 10.0, 45.0, 55.0, 90.0]


def test_an_account_free_already_counts_as_free_now() -> None:
    assert expected_wait([-5.0], interval_s=2, ahead=1) == 2.0


def test_unpaced_accounts_take_every_job_at_once() -> None:
    assert expected_wait([0.0], interval_s=0, ahead=50) == 0.0


def test_no_account_no_estimate() -> None:
    with pytest.raises(ValueError):
        expected_wait([], interval_s=45, ahead=0)


def test_the_comment_says_the_place_and_the_wait() -> None:
    assert progress(2, 5, 39.2) == "queued 2 of 5, about 40 s"
    assert progress(1, 1, 0.2) == "queued 1 of 1, about 1 s"
    assert progress(7, 9, 610) == "queued 7 of 9, about 10 min"


def test_a_ready_account_is_free_when_its_pacing_says() -> None:
    assert account(status(WorkerState.READY), NOW) == Account("w1", 0.0, True, None)
    paced = account(status(WorkerState.READY), NOW, paced_s=30)
    assert paced == Account("w1", 30.0, True, "paced")
    busy = account(status(WorkerState.BUSY, busy=2), NOW)
    assert busy == Account("w1", 0.0, True, "busy")


def test_a_cooling_account_frees_when_its_cooling_ends() -> None:
    cooling = account(status(WorkerState.COOLING, until=NOW + 90), NOW, paced_s=10)
    assert cooling.free_in == 90.0 and not cooling.serving
    assert cooling.why is not None and cooling.why.startswith("cooling until ")


@pytest.mark.parametrize(
    ("state", "why"),
    [
        (WorkerState.FLAGGED, "flagged"),
        (WorkerState.CHALLENGE, "waiting for a person"),
        (WorkerState.LOGIN_REQUIRED, "waiting for a person"),
        (WorkerState.RESTARTING, "restarting"),
        (WorkerState.UNREACHABLE, "not reaching the arena"),
    ],
)
def test_an_account_that_cannot_serve_says_why(state: WorkerState, why: str) -> None:
    assert account(status(state), NOW) == Account("w1", None, False, why)


def test_reasons_are_counted() -> None:
    accounts = [
        Account("a", 3.0, True, "paced"),
        Account("b", None, False, "waiting for a person"),
        Account("c", 9.0, True, "paced"),
    ]
    assert describe(accounts) == "2 paced, 1 waiting for a person"


PACED = [Account("a", 40.0, True, "paced"), Account("b", 70.0, True, "paced")]


def test_a_wait_within_the_limit_is_no_refusal() -> None:
    assert refusal("m", PACED, max_wait_s=60, expected_s=40) is None


def test_paced_accounts_that_cannot_take_it_in_time_are_a_429_until_the_first_frees() -> None:
    refused = refusal("m", PACED, max_wait_s=30, expected_s=40)
    assert refused is not None and refused.status == 429 and refused.retry_after_s == 40
    error = refused.error()
    assert error.headers == {"Retry-After": "40"} and error.code == "rate_limit_exceeded"
    assert "the first frees in 40 s" in error.message
    event = refused.event()
    assert (event["kind"], event["retry_after"], event["status"]) == ("rate_limited", 40, 429)


def test_a_wait_that_ran_out_on_paced_accounts_is_a_429() -> None:
    refused = refusal("m", PACED, max_wait_s=30)
    assert refused is not None and refused.status == 429


def test_a_wait_that_ran_out_on_busy_accounts_is_a_503_saying_so() -> None:
    busy = [Account("a", 0.0, True, "busy")]
    refused = refusal("m", busy, max_wait_s=30)
    assert refused is not None and refused.status == 503
    assert refused.message == "Every account that has `m` is busy: 1 busy. Try again soon."
    assert refused.event()["kind"] == "no_worker"


def test_accounts_that_cannot_serve_are_a_503_naming_why() -> None:
    paused = [Account("a", None, False, "waiting for a person")]
    refused = refusal("m", paused, max_wait_s=30, expected_s=None)
    assert refused is not None and refused.status == 503 and refused.retry_after_s is None
    assert refused.message == "No account that has `m` can serve it now: 1 waiting for a person."
    assert refused.error().code == "no_worker"


def test_a_cooling_account_is_a_503_with_when_it_cools_down() -> None:
    cooling = [Account("a", 600.0, False, "cooling until 12:00:00 UTC")]
    refused = refusal("m", cooling, max_wait_s=30, expected_s=600)
    assert refused is not None and refused.status == 503 and refused.retry_after_s == 600
    assert "cooling until 12:00:00 UTC" in refused.message
    assert refused.error().headers == {"Retry-After": "600"}
