"""execute_job's lifecycle on a real Redis store with plain run functions (no torch, no
Celery): cancellation, leases and duplicate deliveries, lost attempts, ETA, announcements."""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
from collections.abc import Callable

import pytest

from worker.jobs.redis_store import RedisJobStore
from worker.runtime.attempt import ProgressReporter, eta_seconds, execute_job

DB = 12
SPEC = json.dumps({
    "spec_version": 1,
    "model": {"family": "mlp", "depth": 2, "width": 4},
    "data": {"kind": "spirals", "n_train": 32, "n_val": 8},
    "training": {"steps": 1000, "batch_size": 8, "device": "cpu"},
})


@pytest.fixture
def store(fresh_store: Callable[[int], RedisJobStore]) -> RedisJobStore:
    return fresh_store(DB)


def looping_run(steps=1000, pause=0.002, started=None):
    """A stand-in for training: reports progress and checks should_stop at every step."""

    def run(spec, on_progress, should_stop):
        t0 = time.perf_counter()
        for step in range(1, steps + 1):
            time.sleep(pause)
            on_progress({"step": step, "total_steps": steps, "elapsed_s": time.perf_counter() - t0})
            if started is not None and step == 5:
                started.set()
            if should_stop():
                return {"summary": {"outcome": "stopped", "steps": step}}
        return {"summary": {"outcome": "completed", "steps": steps}}

    return run


def must_not_run(spec, on_progress, should_stop):
    raise AssertionError("the job ran")


def test_a_running_job_stops_within_the_check_interval_when_cancelled(store):
    job = store.create(SPEC, name=None, queue="cpu")
    started, announced = threading.Event(), []
    result = {}

    def work():
        result["status"] = execute_job(
            store, job.id, worker="w@h", run=looping_run(started=started),
            progress_interval_s=0, cancel_check_interval_s=0.05,
            on_final=lambda jid, status: announced.append((jid, status)),
        )

    thread = threading.Thread(target=work)
    thread.start()
    assert started.wait(10)
    asked = time.monotonic()
    assert store.request_cancel(job.id) == "running"
    thread.join(10)
    stopped_after = time.monotonic() - asked
    assert result["status"] == "cancelled"
    record = store.get(job.id)
    assert record.status == "cancelled" and record.cancel_requested
    steps = record.result["summary"]["steps"]
    assert 5 <= steps < 1000  # partial
    assert f"at step {steps}" in record.error
    assert stopped_after < 1.0
    assert announced == [(job.id, "cancelled")]
    assert store.lease(job.id) is None


def test_a_job_cancelled_while_queued_never_runs(store):
    job = store.create(SPEC, name=None, queue="cpu")
    store.request_cancel(job.id)
    assert execute_job(store, job.id, worker="w", run=must_not_run) is None
    assert store.get(job.id).attempts == 0


def test_a_flagged_job_whose_worker_died_is_cancelled_on_redelivery(store, redis_server):
    job = store.create(SPEC, name=None, queue="cpu")
    store.claim(job.id, worker="dead@h", holder="dead@h|1", lease_ttl_s=30, max_attempts=3)
    store.request_cancel(job.id)
    redis_server.client(DB).delete(store.lease_key(job.id))  # the lease expired
    announced = []
    status = execute_job(store, job.id, worker="w2", run=must_not_run,
                         on_final=lambda jid, s: announced.append(s))
    assert status == "cancelled" and announced == ["cancelled"]
    assert store.get(job.id).attempts == 1


def test_a_duplicate_delivery_is_dropped_while_another_attempt_is_alive(store):
    job = store.create(SPEC, name=None, queue="cpu")
    store.claim(job.id, worker="other@h", holder=f"other@h|{os.getpid()}", lease_ttl_s=30,
                max_attempts=3)
    assert execute_job(store, job.id, worker="w@h", run=must_not_run) is None
    # also from the same node while the holder process is alive (a second pool child)
    sibling = subprocess.Popen(["sleep", "30"])
    try:
        store.claim(job.id, worker="other@h", holder=f"other@h|{sibling.pid}",
                    lease_ttl_s=30, max_attempts=3, replace=store.lease(job.id))
        store_job = store.get(job.id)
        assert execute_job(store, job.id, worker="other@h", run=must_not_run) is None
    finally:
        sibling.kill()
        sibling.wait()
    assert store.get(job.id) == store_job  # attempts, worker, status untouched


def test_a_dead_child_of_the_same_node_is_taken_over_at_once(store):
    dead = subprocess.Popen(["true"])
    dead.wait()  # a pid that no longer exists
    job = store.create(SPEC, name=None, queue="cpu")
    store.claim(job.id, worker="w@h", holder=f"w@h|{dead.pid}", lease_ttl_s=30, max_attempts=3)
    status = execute_job(store, job.id, worker="w@h", run=looping_run(steps=3, pause=0))
    assert status == "succeeded"
    assert store.get(job.id).attempts == 2


def test_a_retry_in_the_same_process_takes_over_its_own_stale_lease(store):
    """A task retried after a Redis blip finds the lease of its own earlier try."""
    job = store.create(SPEC, name=None, queue="cpu")
    store.claim(job.id, worker="w@h", holder=f"w@h|{os.getpid()}", lease_ttl_s=30,
                max_attempts=3)
    assert execute_job(store, job.id, worker="w@h", run=looping_run(steps=3, pause=0)) == \
        "succeeded"
    assert store.get(job.id).attempts == 2


def test_a_job_lost_max_attempts_times_fails_with_the_reason(store, redis_server):
    job = store.create(SPEC, name=None, queue="cpu")
    client = redis_server.client(DB)
    for n in (1, 2):
        store.claim(job.id, worker="w", holder=f"w|{n}", lease_ttl_s=30, max_attempts=2)
        client.delete(store.lease_key(job.id))
    announced = []
    status = execute_job(store, job.id, worker="w", run=must_not_run, max_attempts=2,
                         on_final=lambda jid, s: announced.append(s))
    assert status == "failed" and announced == ["failed"]
    record = store.get(job.id)
    assert record.status == "failed" and "gave up after 2 attempt(s)" in record.error


def test_the_lease_is_renewed_while_the_run_goes_on(store):
    job = store.create(SPEC, name=None, queue="cpu")
    seen = []

    def slow(spec, on_progress, should_stop):
        for _ in range(8):
            time.sleep(0.1)
            seen.append(store.lease(job.id))
        return {"summary": {"outcome": "completed"}}

    status = execute_job(store, job.id, worker="w@h", run=slow, lease_interval_s=0.05,
                         lease_ttl_s=0.2)
    assert status == "succeeded"
    assert all(lease == f"w@h|{os.getpid()}|1" for lease in seen), seen  # never expired


def test_progress_carries_an_eta(store):
    job = store.create(SPEC, name=None, queue="cpu")
    attempt = store.claim(job.id, worker="w", holder="w|1", lease_ttl_s=30,
                          max_attempts=3).attempt
    reporter = ProgressReporter(store, job.id, attempt, 0)
    reporter({"step": 25, "total_steps": 100, "elapsed_s": 5.0})
    assert store.get(job.id).progress["eta_s"] == pytest.approx(15.0)
    assert eta_seconds({"step": 0, "total_steps": 100, "elapsed_s": 1.0}) is None
    assert eta_seconds({"step": 100, "total_steps": 100, "elapsed_s": 9.0}) == 0.0


def test_should_stop_reads_the_flag_at_most_every_interval(store):
    job = store.create(SPEC, name=None, queue="cpu")
    store.claim(job.id, worker="w", holder="w|1", lease_ttl_s=30, max_attempts=3)
    now = [0.0]
    reporter = ProgressReporter(store, job.id, 1, 0, clock=lambda: now[0],
                                cancel_check_interval_s=0.5)
    assert not reporter.should_stop()  # read at t=0
    store.request_cancel(job.id)
    now[0] = 0.3
    assert not reporter.should_stop()  # not read again yet
    now[0] = 0.6
    assert reporter.should_stop()
