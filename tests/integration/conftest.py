"""Worker processes that tests can start, SIGKILL and restart: ``WorkerFarm``.

Each worker is a real ``celery worker`` (prefork) in its own process group, with the short
timings of ``FAST`` (heartbeats, leases, reaper) so that failures are noticed in seconds.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.conftest import ROOT, tail, wait_for
from worker.core.settings import Settings
from worker.jobs.registry import registry_from_settings

#: Timings for tests: a lost attempt is noticed within ~2 s, progress every 0.1 s.
FAST = {
    "TRAINABILITY_LIVENESS_INTERVAL_S": "0.5",
    "TRAINABILITY_LIVENESS_TTL_S": "2",
    "TRAINABILITY_LEASE_RENEW_INTERVAL_S": "0.25",
    "TRAINABILITY_LEASE_TTL_S": "1.5",
    "TRAINABILITY_REAPER_INTERVAL_S": "0.5",
    "TRAINABILITY_PROGRESS_INTERVAL_S": "0.1",
    "TRAINABILITY_CANCEL_CHECK_INTERVAL_S": "0.1",
    "TRAINABILITY_TORCH_THREADS": "1",
    # every (re)started child would run a warm-up job: seconds per test on 2 cores; the
    # warm-up has its own test and bench (bench/bench_first_job.py)
    "TRAINABILITY_WORKER_WARMUP": "false",
}


@dataclass
class Worker:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    def kill(self) -> None:
        """SIGKILL the whole worker (main process and its pool children): a lost host."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Warm shutdown (SIGTERM), SIGKILL if it does not end."""
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class WorkerFarm:
    redis_url: str
    db: int
    logs: Path
    env: dict[str, str] = field(default_factory=dict)
    workers: list[Worker] = field(default_factory=list)

    def start(self, name: str, *, queues: str = "cpu,gpu", concurrency: int = 1,
              app: str = "worker.runtime.app", env: dict[str, str] | None = None) -> Worker:
        """A training worker; ``queues="webhooks"``: a notifier (thread pool), as training
        queues and webhook deliveries never share a worker (worker/runtime/queues.py)."""
        log = self.logs / f"{name}-{len(self.workers)}.log"
        environment = {**os.environ, "REDIS_URL": self.redis_url, "PYTHONPATH": str(ROOT),
                       **FAST, **self.env, **(env or {})}
        pool = "--pool=threads" if queues == "webhooks" else "--pool=prefork"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", app, "worker", pool,
                 f"--concurrency={concurrency}", "-Q", queues, "-n", f"{name}@%h", "-l", "info",
                 "--without-gossip", "--without-mingle"],
                cwd=ROOT, env=environment, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        worker = Worker(name=name, proc=proc, log=log)
        self.workers.append(worker)
        registry = registry_from_settings(Settings(redis_url=self.redis_url))
        wait_for(lambda: proc.poll() is None and any(
            w.pid == proc.pid for w in registry.live_workers()), 60,
            f"worker {name} to beat", interval=0.1, on_fail=lambda: tail(log))
        return worker

    def stop_all(self) -> None:
        """Warm shutdown of every worker at once, then wait for each."""
        for worker in self.workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGTERM)
        for worker in self.workers:
            worker.stop()

    def output(self) -> str:
        return "\n".join(w.output() for w in self.workers)


@pytest.fixture
def worker_farm(redis_server, tmp_path_factory) -> Iterator[type[WorkerFarm]]:
    """``worker_farm(db, env)`` -> a ``WorkerFarm`` on an emptied database; every worker it
    started is stopped at the end of the test."""
    farms: list[WorkerFarm] = []

    def make(db: int, env: dict[str, str] | None = None) -> WorkerFarm:
        redis_server.client(db).flushdb()
        farm = WorkerFarm(redis_server.url(db), db, tmp_path_factory.mktemp(f"workers{db}"),
                          env=env or {})
        farms.append(farm)
        return farm

    yield make  # type: ignore[misc]
    for farm in farms:
        farm.stop_all()


def wait_final(client, job_id: str, timeout: float = 60):
    """Poll until the job is final; return it."""
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/experiments/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled", "timed_out"):
            return job
        assert time.monotonic() < deadline, f"job {job_id} not final: {job}"
        time.sleep(0.1)


def wait_until(predicate, timeout: float, what: str) -> None:
    wait_for(predicate, timeout, what, interval=0.05)
