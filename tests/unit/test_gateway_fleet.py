from __future__ import annotations

from gateway.fleet.heartbeats import describe_unready, state_counts
from shared.fleet.worker_status import WorkerState, WorkerStatus


def status(worker_id: str, state: WorkerState) -> WorkerStatus:
    return WorkerStatus(id=worker_id, state=state, queue=f"q:{worker_id}", capacity=4, updated_at=0)


def test_no_worker_at_all() -> None:
    assert describe_unready([]) == "no worker is running"


def test_the_states_seen_are_named_and_counted() -> None:
    fleet = [
        status("a", WorkerState.CHALLENGE),
        status("b", WorkerState.LOGIN_REQUIRED),
        status("c", WorkerState.CHALLENGE),
    ]
    assert describe_unready(fleet) == "no worker is ready: 2 in challenge, 1 in login_required"
    assert state_counts(fleet) == {"challenge": 2, "login_required": 1}
