"""execute_job with the real Redis store and plain run functions (no torch, no Celery)."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from worker.jobs.redis_store import RedisJobStore
from worker.runtime.attempt import ProgressReporter, describe_error, execute_job

DB = 1  # JOBSTORE_DB in tests/conftest.py
SPEC = json.dumps({
    "spec_version": 1,
    "model": {"family": "mlp", "depth": 2, "width": 4},
    "data": {"kind": "spirals", "n_train": 32, "n_val": 8},
    "training": {"steps": 3, "batch_size": 8, "device": "cpu"},
})


@pytest.fixture
def store(fresh_store: Callable[[int], RedisJobStore]) -> RedisJobStore:
    return fresh_store(DB)


def completed_run(spec, on_progress, should_stop):
    for step in (1, 2, 3):
        on_progress({"step": step, "total_steps": spec.training.steps})
        assert not should_stop()
    return {"summary": {"outcome": "completed", "steps": 3}}


def test_success_records_result_progress_and_attempt(store):
    job = store.create(SPEC, name=None, queue="cpu")

    status = execute_job(store, job.id, worker="w@h", run=completed_run, progress_interval_s=0)

    assert status == "succeeded"
    done = store.get(job.id)
    assert (done.status, done.attempts, done.worker) == ("succeeded", 1, "w@h")
    assert done.result == {"summary": {"outcome": "completed", "steps": 3}}
    assert done.progress == {"step": 3, "total_steps": 3}
    assert done.error is None


def test_a_diverged_run_is_a_successful_job(store):
    job = store.create(SPEC, name=None, queue="cpu")

    def diverging(spec, on_progress, should_stop):
        return {"summary": {"outcome": "diverged", "diverged_at_step": 2}}

    assert execute_job(store, job.id, worker="w", run=diverging) == "succeeded"
    assert store.get(job.id).result["summary"]["outcome"] == "diverged"


def test_a_run_stopped_at_its_time_limit_keeps_the_partial_result(store):
    job = store.create(SPEC, name=None, queue="cpu")

    def limited(spec, on_progress, should_stop):
        return {"summary": {"outcome": "timed_out", "steps": 2}}

    assert execute_job(store, job.id, worker="w", run=limited) == "timed_out"
    record = store.get(job.id)
    assert record.result == {"summary": {"outcome": "timed_out", "steps": 2}}
    assert "time limit" in record.error


def test_an_exception_fails_the_job_with_type_and_message(store):
    job = store.create(SPEC, name=None, queue="cpu")

    def broken(spec, on_progress, should_stop):
        raise RuntimeError("CUDA out of memory")

    assert execute_job(store, job.id, worker="w", run=broken) == "failed"
    failed = store.get(job.id)
    assert failed.error == "RuntimeError: CUDA out of memory"
    assert failed.result is None


def test_the_soft_time_limit_ends_as_timed_out(store):
    job = store.create(SPEC, name=None, queue="cpu")

    def slow(spec, on_progress, should_stop):
        on_progress({"step": 1})
        raise SoftTimeLimitExceeded()

    assert execute_job(store, job.id, worker="w", run=slow, time_limit_s=60) == "timed_out"
    timed_out = store.get(job.id)
    assert timed_out.error == "the job exceeded its time limit of 60 s"
    assert timed_out.progress == {"step": 1}


def test_a_redelivered_task_for_a_final_job_does_nothing(store):
    job = store.create(SPEC, name=None, queue="cpu")
    execute_job(store, job.id, worker="w", run=completed_run)
    before = store.get(job.id)

    def must_not_run(spec, on_progress, should_stop):
        raise AssertionError("ran twice")

    assert execute_job(store, job.id, worker="w2", run=must_not_run) is None
    assert store.get(job.id) == before


def test_an_interrupted_attempt_is_restarted_and_counted(store):
    job = store.create(SPEC, name=None, queue="cpu")
    store.start(job.id, worker="died")  # the first attempt's worker was killed

    assert execute_job(store, job.id, worker="w2", run=completed_run) == "succeeded"
    assert store.get(job.id).attempts == 2


def test_unknown_job_is_dropped(store):
    assert execute_job(store, "f" * 32, worker="w", run=completed_run) is None


def test_a_spec_that_no_longer_parses_fails_the_job(store):
    job = store.create('{"spec_version": 99}', name=None, queue="cpu")
    assert execute_job(store, job.id, worker="w", run=completed_run) == "failed"
    assert store.get(job.id).error.startswith("ValidationError: ")


def test_progress_writes_are_throttled(store):
    job = store.create(SPEC, name=None, queue="cpu")
    attempt = store.start(job.id, worker="w").attempts
    now = [0.0]
    reporter = ProgressReporter(store, job.id, attempt, 0.5, clock=lambda: now[0])

    reporter({"step": 1})
    assert store.get(job.id).progress == {"step": 1}
    now[0] = 0.3
    reporter({"step": 2})
    assert store.get(job.id).progress == {"step": 1}  # too soon: kept, not written
    assert reporter.latest == {"step": 2}
    now[0] = 0.6
    reporter({"step": 3})
    assert store.get(job.id).progress == {"step": 3}


def test_a_superseded_attempt_is_told_to_stop(store):
    job = store.create(SPEC, name=None, queue="cpu")
    store.start(job.id, worker="w1")
    store.start(job.id, worker="w2")  # attempt 2 took over
    reporter = ProgressReporter(store, job.id, 1, 0)

    assert not reporter.should_stop()
    reporter({"step": 1})
    assert reporter.should_stop()


def test_describe_error_is_short():
    assert describe_error(ValueError("x" * 5000)).startswith("ValueError: xxx")
    assert len(describe_error(ValueError("x" * 5000))) == 2000
    assert describe_error(KeyError()) == "KeyError"
