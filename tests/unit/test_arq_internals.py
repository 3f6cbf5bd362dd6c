"""worker/queue_worker.py replaces parts of arq's Worker and leans on its private attributes.

These tests fail the day arq changes them, so that an upgrade is read against the overrides
before it ships (pyproject.toml pins arq exactly for the same reason).
"""

from __future__ import annotations

import hashlib
import inspect

import arq
import pytest
from arq.worker import Worker

from worker import queue_worker

#: The arq methods the overrides copy or wrap, by the digest of their source in arq 0.28.0:
#: `_poll_iteration` and `start_jobs` are what `QueueWorker._iterate` and `_start` redo;
#: `run_job`, `finish_job`, `handle_sig` and `close`, what `run_job` and `close` wrap (they rely
#: on aborting tasks being finished, not rerun); `_cancel_aborted_jobs`, what `_abort` redoes;
#: `__init__`, where `sem`, `job_counter`, `tasks`, `job_tasks`, `aborting_tasks` and
#: `in_progress_timeout_s` are made.
SOURCES = {
    "__init__": "edfb0cd7e05e77cf",
    "_poll_iteration": "f8d39d823a0a59f2",
    "start_jobs": "b45797cfa40bed7f",
    "run_job": "589a19059ff84ee7",
    "finish_job": "903f09c92830d3fd",
    "_release_sem_dec_counter_on_complete": "0ed101482e942c33",
    "handle_sig": "985ff7ba01aa8f04",
    "close": "5bcc9cb356680829",
    "_cancel_aborted_jobs": "54575eaf8682f95b",
}


def test_arq_is_the_version_the_overrides_were_written_for() -> None:
    assert arq.VERSION == "0.28.0"


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_the_arq_code_the_worker_overrides_is_unchanged(name: str) -> None:
    source = inspect.getsource(getattr(Worker, name))
    assert hashlib.sha256(source.encode()).hexdigest()[:16] == SOURCES[name], (
        f"arq's Worker.{name} changed: read worker/queue_worker.py against it, then update"
    )


def test_the_overridden_methods_are_still_arqs_to_override() -> None:
    for name in ("_poll_iteration", "run_job", "close", "_release_sem_dec_counter_on_complete"):
        assert name in vars(queue_worker.QueueWorker)
        assert callable(getattr(Worker, name))
