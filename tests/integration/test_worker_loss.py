"""A worker child killed mid-job (OOM killer, SIGKILL) does not lose the job: the message is
rejected back to the queue (acks_late + task_reject_on_worker_lost), the job restarts as a
new attempt, and the record shows both (celery#1628)."""

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
