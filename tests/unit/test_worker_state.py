from __future__ import annotations

import logging

import pytest

from shared.fleet.worker_status import WorkerState as S
from worker.state import TRANSITIONS, InvalidTransition, StateMachine


def ready(capacity: int = 2) -> StateMachine:
    machine = StateMachine("w-test", capacity)
    machine.resume("page usable")
    return machine


def test_every_state_has_a_row_and_stopped_is_final() -> None:
    assert set(TRANSITIONS) == set(S)
    assert TRANSITIONS[S.STOPPED] == frozenset()
    assert all(
        S.STOPPED in targets for state, targets in TRANSITIONS.items() if state is not S.STOPPED
    )


def test_a_transition_outside_the_table_is_refused() -> None:
    machine = StateMachine("w-test", 1)
    with pytest.raises(InvalidTransition):
        machine.to(S.BUSY, reason="no")
    assert machine.state is S.STARTING
    machine.to(S.STOPPED, reason="bye")
    with pytest.raises(InvalidTransition):
        machine.to(S.READY, reason="no")


def test_busy_follows_the_slots_in_use() -> None:
    machine = ready(capacity=2)
    seen: list[S] = []
    machine.on_change(lambda: seen.append(machine.state))
    with machine.slot():
        assert (machine.state, machine.busy) == (S.READY, 1)
        with machine.slot():
            assert (machine.state, machine.busy) == (S.BUSY, 2)
        assert (machine.state, machine.busy) == (S.READY, 1)
    assert (machine.state, machine.busy) == (S.READY, 0)
    assert seen == [S.BUSY, S.READY]  # transitions only, not every slot


def test_a_slot_is_freed_when_the_job_fails() -> None:
    machine = ready(capacity=1)
    with pytest.raises(RuntimeError), machine.slot():
        assert machine.state is S.BUSY
        raise RuntimeError("boom")
    assert (machine.state, machine.busy) == (S.READY, 0)


def test_cooling_is_extended_never_shortened_and_lifted_when_over() -> None:
    machine = ready()
    machine.cool(100.0, reason="429")
    machine.cool(50.0, reason="429 again")
    assert (machine.state, machine.until) == (S.COOLING, 100.0)
    assert not machine.serving
    machine.lift_cooling(now=99.0)
    assert machine.state is S.COOLING
    machine.lift_cooling(now=100.0)
    assert (machine.state, machine.until) == (S.READY, None)


def test_cooling_ending_with_every_slot_taken_resumes_busy() -> None:
    machine = ready(capacity=1)
    with machine.slot():
        machine.cool(10.0, reason="429")
        machine.lift_cooling(now=11.0)
        assert machine.state is S.BUSY
    assert machine.state is S.READY


def test_cooling_while_stopping_changes_nothing() -> None:
    machine = ready()
    machine.to(S.STOPPED, reason="bye")
    machine.cool(10.0, reason="late 429")
    assert machine.state is S.STOPPED


def test_transitions_are_logged_without_anything_but_states(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="worker.state")
    ready()
    assert [record.getMessage() for record in caplog.records] == [
        "worker w-test: starting → ready (page usable)"
    ]


def test_a_broken_browser_restarts_from_any_live_state_through_starting() -> None:
    for state in (
        S.STARTING,
        S.READY,
        S.BUSY,
        S.COOLING,
        S.FLAGGED,
        S.CHALLENGE,
        S.LOGIN_REQUIRED,
    ):
        assert S.RESTARTING in TRANSITIONS[state]
    assert TRANSITIONS[S.RESTARTING] == frozenset({S.STARTING, S.STOPPED})
    machine = ready()
    machine.to(S.CHALLENGE, reason="check")
    machine.to(S.LOGIN_REQUIRED, reason="and a sign-in")
    assert not machine.serving
    machine.resume("a person cleared it")
    assert machine.state is S.READY


def test_cooling_outlasts_a_check_passed_meanwhile() -> None:
    machine = ready()
    machine.cool(100.0, reason="429")
    machine.to(S.CHALLENGE, reason="a check")
    assert machine.until == 100.0
    machine.resume("a person passed the check", now=50.0)
    assert (machine.state, machine.until) == (S.COOLING, 100.0)
    machine.lift_cooling(now=100.0)
    assert (machine.state, machine.until) == (S.READY, None)


def test_an_arena_that_cannot_be_used_is_waited_on_with_its_reason_and_next_try() -> None:
    from shared.fleet.diagnosis import Check, problem
    from worker.state import WAITING_FOR_ARENA

    finding = problem(Check.PAGE, "could not load x (net::ERR_NAME_NOT_RESOLVED)", "check it")
    machine = StateMachine("w-test", 1)
    seen: list[tuple[S, str | None]] = []
    machine.on_change(lambda: seen.append((machine.state, machine.check)))
    machine.failed(S.UNREACHABLE, finding, next_try=100.0)
    machine.failed(S.UNREACHABLE, finding, next_try=104.0)  # the next failed try
    assert (machine.state, machine.next_try, machine.check) == (S.UNREACHABLE, 104.0, Check.PAGE)
    assert machine.reason == finding.line() and "lmarena-bridge doctor" in machine.reason
    assert seen == [(S.UNREACHABLE, Check.PAGE)] * 2  # the check is set when listeners hear
    assert not machine.serving
    machine.resume("the page is usable")
    assert (machine.state, machine.check, machine.next_try) == (S.READY, None, None)
    # Waiting for the arena is for a browser that has not served yet, or a person's fix.
    for state in WAITING_FOR_ARENA:
        assert state not in TRANSITIONS[S.READY] and state in TRANSITIONS[S.CHALLENGE]


def test_pauses_between_tries_grow_to_a_cap() -> None:
    from worker.state import MAX_PAUSE_S, retry_pause

    pauses = [retry_pause(n) for n in range(1, 10)]
    assert pauses[:5] == [2.0, 4.0, 8.0, 16.0, 32.0]
    assert pauses[5:] == [MAX_PAUSE_S] * 4 == [60.0] * 4
    # Tries in a row, each after its pause, within a first minute: at most 5.
    starts, at = [], 0.0
    for failures in range(1, 20):
        if at > 60:
            break
        starts.append(at)
        at += retry_pause(failures)
    assert len(starts) == 5


def flagged_machine(first_pause: float = 60.0) -> StateMachine:
    from worker.state import flag_pauses

    machine = StateMachine("w-test", 2, flag_pauses=flag_pauses(first_pause))
    machine.resume("page usable")
    return machine


def test_a_flag_stops_serving_until_it_is_gone_and_its_pauses_grow_to_a_cap() -> None:
    machine = flagged_machine()
    machine.flag("a fresh token was refused", now=1000.0)
    assert (machine.state, machine.next_try, machine.probe_at) == (S.FLAGGED, 1060.0, 1060.0)
    assert not machine.serving and "tries alone in 1 min" in machine.reason
    machine.flag("another answer refused too", now=1001.0)  # the same flag: no longer pause
    assert machine.probe_at == 1060.0
    pauses = []
    for now in (1060.0, 1180.0, 1420.0, 1780.0):
        machine.still_flagged("its call alone was refused", now=now)
        assert machine.state is S.FLAGGED and machine.next_try == machine.probe_at
        pauses.append(machine.probe_at - now)
    assert pauses == [120.0, 240.0, 360.0, 360.0]  # 20 → 40 → 80 → 120 → 120 minutes, scaled
    machine.unflag("a person passed the check")
    assert (machine.state, machine.flag_level, machine.probe_at) == (S.READY, 0, None)
    machine.flag("flagged again", now=2000.0)
    assert machine.probe_at == 2060.0  # a new flag starts with the first pause


def test_a_flag_outlasts_a_check_or_a_restart_and_outranks_cooling() -> None:
    machine = flagged_machine()
    machine.cool(500.0, reason="429")
    machine.flag("refused", now=100.0)
    machine.cool(900.0, reason="a late 429")  # flagged still: cooling waits behind it
    assert machine.state is S.FLAGGED and machine.until == 900.0
    machine.to(S.CHALLENGE, reason="a check")
    machine.resume("a person passed the Cloudflare check", now=200.0)
    assert (machine.state, machine.next_try) == (S.FLAGGED, 160.0)
    machine.to(S.RESTARTING, reason="the browser died")
    machine.to(S.STARTING, reason="a new browser")
    machine.resume("page usable", now=200.0)
    assert machine.state is S.FLAGGED
    machine.unflag("its call alone went through", now=200.0)
    assert (machine.state, machine.until) == (S.COOLING, 900.0)


def test_another_account_signed_in_starts_with_a_clean_standing() -> None:
    machine = flagged_machine()
    machine.cool(500.0, reason="429")
    machine.flag("refused", now=100.0)
    machine.to(S.STARTING, reason="signing in with other cookies")
    machine.new_account()
    machine.resume("page usable", now=200.0)
    assert (machine.state, machine.until, machine.flag_level) == (S.READY, None, 0)
