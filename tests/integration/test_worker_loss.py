"""A worker child killed mid-job (OOM killer, SIGKILL) does not lose the job: the message is
rejected back to the queue (acks_late + task_reject_on_worker_lost), the job restarts as a
new attempt, and the record shows both (celery#1628). A sweep cohort killed mid-run comes back
whole: every one of its jobs ends as attempt 2, trained together again."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

SPEC = {
    "spec_version": 1,
    "name": "long enough to be killed",
    "model": {"family": "mlp", "depth": 4, "width": 32},
    "data": {"kind": "spirals", "n_train": 512, "n_val": 64},
    "training": {"steps": 5000, "batch_size": 32, "device": "cpu"},  # seconds, not ms
    "diagnostics": {"preset": "off"},
}


def pool_children(pid: int) -> list[int]:
    done = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return [int(line) for line in done.stdout.split()]


@pytest.mark.integration
def test_a_killed_worker_child_requeues_the_job_as_a_new_attempt(e2e_server, celery_worker):
    with e2e_server.client() as client:
        job_id = client.post("/v1/experiments", json=SPEC).json()["id"]

        def job():
            return client.get(f"/v1/experiments/{job_id}").json()

        deadline = time.monotonic() + 120
        while not ((j := job())["status"] == "running" and (j["progress"] or {}).get("step", 0)
                   >= 50):
            assert j["status"] in ("queued", "running"), j
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.05)

        for child in pool_children(celery_worker.proc.pid):  # the one running it among them
            os.kill(child, signal.SIGKILL)

        while (j := job())["status"] not in ("succeeded", "failed", "cancelled", "timed_out"):
            assert time.monotonic() < deadline, f"the job did not finish: {j}"
            time.sleep(0.2)
    assert j["status"] == "succeeded", j["error"]
    assert j["attempts"] == 2
    assert j["result"]["summary"]["steps"] == 5000


@pytest.mark.integration
def test_a_killed_child_mid_cohort_loses_none_of_the_cohorts_jobs(e2e_server, celery_worker):
    """The leader's message comes back (it carries the cohort); its new attempt takes over the
    siblings whose attempts died with the child (same node, dead pid) and trains them again."""
    with e2e_server.client() as client:
        response = client.post("/v1/sweeps", json={
            "base": SPEC, "axes": {"optimizer.lr": [0.01, 0.02, 0.04]}})
        assert response.status_code == 202, response.text
        jobs = response.json()["job_ids"]

        def states():
            return [client.get(f"/v1/experiments/{j}").json() for j in jobs]

        deadline = time.monotonic() + 120
        while not all(s["status"] == "running" and (s["progress"] or {}).get("step", 0) >= 50
                      for s in states()):
            assert time.monotonic() < deadline, "the cohort did not start"
            time.sleep(0.05)
        for child in pool_children(celery_worker.proc.pid):
            os.kill(child, signal.SIGKILL)
        final = ("succeeded", "failed", "cancelled", "timed_out")
        ends = states()
        while not all(s["status"] in final for s in ends):
            assert time.monotonic() < deadline, f"the cohort did not finish: {ends}"
            time.sleep(0.2)
            ends = states()
    for job in ends:
        assert job["status"] == "succeeded", job["error"]
        assert job["attempts"] == 2
        assert job["result"]["summary"]["steps"] == SPEC["training"]["steps"]
        assert job["result"]["cohort"]["size"] == 3
