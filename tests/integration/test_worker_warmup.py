"""A worker whose training processes warm up reports ready only once they all have, so a job
submitted as soon as ``/readyz`` counts it starts at once (worker/runtime/liveness.py,
worker/runtime/child.py); without warm-up, or without training processes, it is ready at once.
"""

from __future__ import annotations

import re
import threading
import time
from datetime import datetime

import pytest

from tests.conftest import LiveServer, make_settings, wait_for
from tests.integration.conftest import wait_final
from worker.core.settings import Settings
from worker.jobs.registry import registry_from_settings

DB = 9  # as tests/integration/test_redelivery.py: flushed by each ``worker_farm``
SPEC = {
    "spec_version": 1,
    "name": "first job of a fresh worker",
    "model": {"family": "mlp", "depth": 6, "width": 64},
    "data": {"kind": "spirals", "n_train": 256, "n_val": 64},
    "training": {"steps": 2, "batch_size": 32, "device": "cpu"},
}
WARM_LINE = re.compile(r"training process (\d+) warmed up in")


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


class ReadyWatch:
    """Samples ``/readyz`` every 20 ms; on the first 200, notes how many training processes
    had logged the end of their warm-up in ``log``."""

    def __init__(self, client, log) -> None:
        self.client, self.log = client, log
        self.not_ready_seen = False
        self.warm_when_ready: set[str] | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> ReadyWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self._done.is_set():
            warm = set(WARM_LINE.findall(self.log.read_text(errors="replace"))
                       if self.log.exists() else [])
            if self.client.get("/readyz").status_code == 200:
                self.warm_when_ready = warm
                return
            self.not_ready_seen = True
            self._done.wait(0.02)


@pytest.mark.integration
def test_a_fresh_worker_is_ready_once_its_processes_are_warm_and_starts_a_job_at_once(
        redis_server, worker_farm):
    farm = worker_farm(DB, {"TRAINABILITY_WORKER_WARMUP": "true"})
    with LiveServer(make_settings(redis_server, DB)) as api, api.client() as client:
        assert client.get("/readyz").status_code == 503  # no worker yet
        early = client.post("/v1/experiments", json=SPEC).json()["id"]  # waits in the queue
        log = farm.logs / "warm-0.log"
        with ReadyWatch(client, log) as watch:
            # one training process: two warm up for twice as long on the 2-core CI host; the
            # wait for each of several is tests/worker/runtime/test_warm_up_reports.py
            worker = farm.start("warm", queues="cpu")  # returns once it beats
            wait_for(lambda: watch.warm_when_ready is not None, 5, "/readyz to count it")
        output = worker.output()
        assert watch.not_ready_seen
        # the training process had warmed up before /readyz counted the worker
        assert len(watch.warm_when_ready or ()) == 1, output
        assert "waiting for its training processes to warm up" in output
        # the warm-up line counts the imports: seconds in a fresh process, not milliseconds
        took = [float(s) for s in re.findall(r"warmed up in ([0-9.]+) s", output)]
        assert min(took) > 0.5, took
        assert wait_final(client, early)["status"] == "succeeded"
        # the warming worker took no job: the one queued before it started came after (read
        # once that job has ended: at readiness its "received" line may not be written yet)
        output = worker.output()
        assert output.index("warmed up in") < output.index("] received"), output

        job_id = client.post("/v1/experiments", json=SPEC).json()["id"]
        job = wait_final(client, job_id)
    assert job["status"] == "succeeded", job["error"]
    queued = _epoch(job["started_at"]) - _epoch(job["created_at"])
    assert queued < 2.0, f"the first job waited {queued:.2f} s for a ready worker"


@pytest.mark.integration
def test_without_warm_up_or_training_processes_a_worker_is_ready_at_once(worker_farm):
    farm = worker_farm(DB)  # FAST: warm-up off
    registry = registry_from_settings(Settings(redis_url=farm.redis_url))
    began = time.monotonic()
    trainer = farm.start("cold", queues="cpu")
    notifier = farm.start("notifier", queues="webhooks",
                          env={"TRAINABILITY_WORKER_WARMUP": "true"})
    assert time.monotonic() - began < 20
    assert {trainer.proc.pid, notifier.proc.pid} <= {w.pid for w in registry.live_workers()}
    for worker in (trainer, notifier):
        assert "waiting for its training processes" not in worker.output()
