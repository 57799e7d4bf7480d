"""execute_cohort with the real Redis store and plain run functions (no torch, no Celery).

Which jobs one task claims and trains together, and how each is recorded: its own status,
attempt, progress and result; a sibling cancelled, taken, ended or of another design is left
alone; a design without a batched form trains alone; a failing run fails every job it held.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from worker.core.errors import StoreUnavailable
from worker.jobs.redis_store import RedisJobStore
from worker.runtime.attempt import AttemptKnobs
from worker.runtime.cohort_attempt import execute_cohort

DB = 1  # JOBSTORE_DB in tests/conftest.py


def spec(lr: float, width: int = 4) -> str:
    return json.dumps({
        "spec_version": 1,
        "model": {"family": "mlp", "depth": 2, "width": width},
        "data": {"kind": "spirals", "n_train": 32, "n_val": 8},
        "optimizer": {"lr": lr},
        "training": {"steps": 3, "batch_size": 8, "device": "cpu"},
    })


@pytest.fixture
def store(fresh_store: Callable[[int], RedisJobStore]) -> RedisJobStore:
    return fresh_store(DB)


def knobs(**kw: Any) -> AttemptKnobs:
    def alone(spec, on_progress, should_stop):
        return {"summary": {"outcome": "completed", "steps": 3}, "alone": spec.optimizer.lr}

    return AttemptKnobs(worker="w@h", run=alone, progress_interval_s=0, time_limit_s=None,
                        max_attempts=3, lease_interval_s=5, lease_ttl_s=30,
                        cancel_check_interval_s=0, on_final=None, **kw)


class Cohort:
    """A plain cohort run: records what it was asked to train; member 1 can be cancelled."""

    def __init__(self) -> None:
        self.trained: list[list[float]] = []

    def __call__(self, specs, progress, stops, on_result) -> None:
        self.trained.append([s.optimizer.lr for s in specs])
        for report in progress:
            report({"step": 1, "total_steps": 3, "cohort": {"size": len(specs)}})
        ended = [k for k, stop in enumerate(stops) if stop()]
        for k in ended:
            on_result(k, {"summary": {"outcome": "stopped", "steps": 1}})
        for k in range(len(specs)):
            if k not in ended:
                on_result(k, {"summary": {"outcome": "completed", "steps": 3},
                              "lr": specs[k].optimizer.lr})


def create(store: RedisJobStore, *docs: str) -> list[str]:
    return [store.create(doc, name=None, queue="cpu").id for doc in docs]


def batched(_spec) -> None:
    return None


def test_one_task_trains_every_queued_job_of_its_cohort(store):
    jobs = create(store, spec(0.1), spec(0.2), spec(0.3))
    run = Cohort()
    statuses = execute_cohort(store, jobs[1], jobs, knobs(), run_cohort=run,
                              batch_reason=batched)
    assert statuses == ["succeeded"] * 3
    assert run.trained == [[0.2, 0.1, 0.3]]  # its own job first
    for job_id, lr in zip(jobs, (0.1, 0.2, 0.3), strict=True):
        record = store.get(job_id)
        assert (record.status, record.attempts, record.worker) == ("succeeded", 1, "w@h")
        assert record.result["lr"] == lr and record.result["cohort"]["job_ids"] == [
            jobs[1], jobs[0], jobs[2]]
        assert record.progress["cohort"] == {"size": 3}
    # the siblings' own tasks then find their jobs ended: nothing runs twice
    assert execute_cohort(store, jobs[0], jobs, knobs(), run_cohort=run,
                          batch_reason=batched) == []
    assert len(run.trained) == 1


def test_cancelled_ended_and_other_designs_are_left_out(store):
    jobs = create(store, spec(0.1), spec(0.2), spec(0.3), spec(0.4, width=8), spec(0.5))
    store.request_cancel(jobs[1])  # queued: cancelled at once
    store.finish(jobs[2], "failed", error="ended before")
    run = Cohort()
    statuses = execute_cohort(store, jobs[0], jobs, knobs(), run_cohort=run,
                              batch_reason=batched)
    assert run.trained == [[0.1, 0.5]]
    assert sorted(s for s in statuses if s) == ["succeeded", "succeeded"]
    assert store.get(jobs[3]).status == "queued"  # another design: its own task runs it
    assert store.get(jobs[1]).status == "cancelled"


def test_a_member_cancelled_mid_run_is_cancelled_alone(store):
    jobs = create(store, spec(0.1), spec(0.2))
    run = Cohort()
    claimed = store.request_cancel

    def cancel_second(specs, progress, stops, on_result):
        claimed(jobs[1])  # running now: the flag is set, the loop sees it
        run(specs, progress, stops, on_result)

    execute_cohort(store, jobs[0], jobs, knobs(), run_cohort=cancel_second,
                   batch_reason=batched)
    assert store.get(jobs[0]).status == "succeeded"
    second = store.get(jobs[1])
    assert second.status == "cancelled" and second.result["summary"]["steps"] == 1


def test_a_design_without_a_batched_form_trains_alone(store):
    jobs = create(store, spec(0.1), spec(0.2))
    run = Cohort()
    statuses = execute_cohort(store, jobs[0], jobs, knobs(), run_cohort=run,
                              batch_reason=lambda _s: "layer 0: LSTM has no batched kernel")
    assert statuses == ["succeeded"] and run.trained == []
    result = store.get(jobs[0]).result
    assert result["alone"] == 0.1
    assert result["cohort"] == {
        "size": 1, "index": 0, "batched": False, "job_ids": jobs,
        "fallback": "layer 0: LSTM has no batched kernel: each point of the cohort trains as "
                    "its own job"}
    assert store.get(jobs[1]).status == "queued"


def test_a_duplicate_delivery_takes_nothing(store):
    jobs = create(store, spec(0.1), spec(0.2))
    store.claim(jobs[0], worker="other@h", holder="other@h|1", lease_ttl_s=30, max_attempts=3)
    run = Cohort()
    assert execute_cohort(store, jobs[0], jobs, knobs(), run_cohort=run,
                          batch_reason=batched) == []
    assert run.trained == [] and store.get(jobs[1]).status == "queued"


def test_a_failing_run_fails_every_job_it_held(store):
    jobs = create(store, spec(0.1), spec(0.2))

    def broken(specs, progress, stops, on_result):
        on_result(0, {"summary": {"outcome": "completed", "steps": 3}})
        raise RuntimeError("CUDA out of memory")

    execute_cohort(store, jobs[0], jobs, knobs(), run_cohort=broken, batch_reason=batched)
    assert store.get(jobs[0]).status == "succeeded"
    failed = store.get(jobs[1])
    assert failed.status == "failed" and failed.error == "RuntimeError: CUDA out of memory"


def test_a_redis_failure_while_recording_fails_no_job_and_the_retry_takes_over(store):
    jobs = create(store, spec(0.1), spec(0.2), spec(0.3))
    finish = store.finish
    calls = {"n": 0}

    def flaky(job_id, status, **kw):
        calls["n"] += 1
        if calls["n"] == 2:  # the second job's result: Redis goes away for a moment
            raise StoreUnavailable("connection reset")
        return finish(job_id, status, **kw)

    store.finish = flaky
    with pytest.raises(StoreUnavailable):  # Celery retries the task
        execute_cohort(store, jobs[0], jobs, knobs(), run_cohort=Cohort(),
                       batch_reason=batched)
    assert [store.get(j).status for j in jobs] == ["succeeded", "running", "running"]
    run = Cohort()  # the retry, in the same process: it takes over the two running jobs
    statuses = execute_cohort(store, jobs[0], jobs, knobs(), run_cohort=run,
                              batch_reason=batched)
    assert statuses == ["succeeded", "succeeded"] and run.trained == [[0.2, 0.3]]
    assert [store.get(j).attempts for j in jobs] == [1, 2, 2]
