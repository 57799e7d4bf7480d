"""Jobs that never get lost, stuck or leaked: real API, real Redis, real Celery workers that
the tests SIGKILL and restart.

- live progress over server-sent events, and the signed webhook (retried after a 500);
- time limits: the spec's and the server's (10 s here), both ``timed_out`` with partial results;
- cancel a queued and a running job; restart the worker and redeliver: they never run again;
- a job of several seeds trained as one batched model: its live progress counts the seeds,
  and a cancel stops every seed at the same step with its partial result;
- a sweep cohort (points that differ in lr) trained together by one worker: each point its own
  job and progress; one point cancels alone while the others go on;
- SIGKILL the whole worker (main process and child) mid-job: the reaper in a restarted worker
  re-queues it and it finishes as attempt 2 (never stuck ``running``).
"""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, make_settings
from tests.integration.conftest import WorkerFarm, wait_final, wait_until
from worker.jobs.dispatch import CeleryDispatcher
from worker.jobs.webhooks import verify
from worker.runtime.reaper import job_ids_in_broker

DB = 10
SECRET = "integration-webhook-secret"
pytestmark = pytest.mark.integration


def spec(steps: int, **training: Any) -> dict[str, Any]:
    """About 0.5 ms per step on one CPU thread."""
    return {
        "spec_version": 1,
        "model": {"family": "mlp", "depth": 4, "width": 32},
        "data": {"kind": "spirals", "n_train": 512, "n_val": 64},
        "training": {"steps": steps, "batch_size": 32, "device": "cpu", **training},
        "diagnostics": {"preset": "off"},
    }


class Receiver:
    """A webhook receiver: answers 500 to the first POST, then 200."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.failures_left = 1
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append({"headers": dict(self.headers), "body": body})
                status = 500 if receiver.failures_left > 0 else 200
                receiver.failures_left -= 1
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/trainability"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def farm(redis_server, tmp_path_factory) -> Iterator[WorkerFarm]:
    redis_server.client(DB).flushdb()
    farm = WorkerFarm(redis_server.url(DB), DB, tmp_path_factory.mktemp("lifecycle"), env={
        "TRAINABILITY_WEBHOOK_ALLOWLIST": "127.0.0.1",
        "TRAINABILITY_WEBHOOK_SECRET": SECRET,
        "TRAINABILITY_WEBHOOK_RETRY_BACKOFF_S": "1",
        "TRAINABILITY_WEBHOOK_RETRY_BACKOFF_MAX_S": "1",
        # the server's maximum training time (the spec may ask for less)
        # (10 s: room for the other jobs here on a loaded 2-core machine)
        "TRAINABILITY_JOB_TIME_LIMIT_S": "10",
        "TRAINABILITY_JOB_SOFT_TIME_LIMIT_S": "20",
        "TRAINABILITY_JOB_HARD_TIME_LIMIT_S": "30",
    })
    farm.start("notifier", queues="webhooks")  # first: live_worker() picks the last one
    farm.start("alpha")
    yield farm
    farm.stop_all()


@pytest.fixture(scope="module")
def api(redis_server, farm) -> Iterator[LiveServer]:
    settings = make_settings(redis_server, DB, webhook_allowlist=["127.0.0.1"],
                             sse_heartbeat_s=1.0, sse_poll_s=1.0)
    with LiveServer(settings) as server:
        yield server


@pytest.fixture
def client(api) -> Iterator[httpx.Client]:
    with api.client() as http_client:
        yield http_client


def live_worker(farm: WorkerFarm):
    running = [w for w in farm.workers if w.proc.poll() is None]
    return running[-1] if running else farm.start("spare")


def submit(client, doc) -> str:
    response = client.post("/v1/experiments", json=doc)
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def test_live_progress_events_and_a_signed_webhook(farm, client):
    live_worker(farm)
    receiver = Receiver()
    try:
        job_id = submit(client, {**spec(3000), "callback_url": receiver.url})
        events: list[tuple[str, Any]] = []
        name = None
        with client.stream("GET", f"/v1/experiments/{job_id}/events", timeout=60) as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    events.append((name or "", json.loads(line[6:])))
        names = [n for n, _ in events]
        assert names[-1] == "end" and events[-1][1]["status"] == "succeeded"
        assert [d["status"] for n, d in events if n == "status"][-2:] == ["running",
                                                                           "succeeded"]
        progress = [d for n, d in events if n == "progress"]
        assert len(progress) >= 3, events  # live: several updates, not just the end
        steps = [p["step"] for p in progress]
        assert steps == sorted(steps) and steps[-1] == 3000
        assert all("eta_s" in p for p in progress) and progress[-1]["eta_s"] == 0

        wait_until(lambda: client.get(f"/v1/experiments/{job_id}").json()["webhook"]
                   and client.get(f"/v1/experiments/{job_id}").json()["webhook"]["state"]
                   == "delivered", 30, "the webhook to be delivered")
        job = client.get(f"/v1/experiments/{job_id}").json()
        assert job["webhook"]["attempts"] == 2  # the 500 was retried
        first, second = receiver.requests
        for request in (first, second):
            headers = request["headers"]
            assert verify(SECRET, headers["X-Trainability-Timestamp"], request["body"],
                          headers["X-Trainability-Signature"])
            assert headers["X-Trainability-Delivery"] == f"{job_id}.succeeded"
        payload = json.loads(second["body"])
        assert payload["status"] == "succeeded" and payload["summary"]["steps"] == 3000
    finally:
        receiver.close()


def test_time_limits_end_in_timed_out_with_partial_results(farm, client):
    live_worker(farm)
    by_spec = submit(client, spec(40_000, time_limit_s=0.5))  # the spec asks for 0.5 s
    by_server = submit(client, spec(80_000))  # the server allows 10 s
    for job_id, limit in ((by_spec, 0.5), (by_server, 10.0)):
        job = wait_final(client, job_id, timeout=60)
        assert job["status"] == "timed_out", job["error"]
        summary = job["result"]["summary"]
        assert summary["outcome"] == "timed_out"
        assert 0 < summary["steps"] < 80_000  # partial: what was done until the limit
        # the deadline covers the whole job (data, training, the end analyses): training
        # itself stops short of it, the job as a whole ends close to it
        assert 0.5 * limit <= summary["train_time_s"] <= limit + 0.1
        assert summary["wall_time_s"] < limit + 2
        assert "time limit" in job["error"]


def test_cancelled_jobs_never_run_again_even_after_a_restart(farm, client, api):
    worker = live_worker(farm)
    running = submit(client, spec(40_000))
    queued = submit(client, spec(40_000))
    wait_until(lambda: (client.get(f"/v1/experiments/{running}").json()["progress"] or {})
               .get("step", 0) > 0, 60, "the first job to make progress")

    response = client.post(f"/v1/experiments/{queued}/cancel")
    assert response.status_code == 202 and response.json()["status"] == "cancelled"
    asked = time.monotonic()
    assert client.post(f"/v1/experiments/{running}/cancel").status_code == 202
    stopped = wait_final(client, running, timeout=10)
    assert time.monotonic() - asked < 2.0  # promptly
    assert stopped["status"] == "cancelled"
    assert 0 < stopped["result"]["summary"]["steps"] < 40_000  # partial diagnostics
    assert client.post(f"/v1/experiments/{running}/cancel").status_code == 409

    before = {job_id: client.get(f"/v1/experiments/{job_id}").json()
              for job_id in (running, queued)}
    worker.stop()
    restarted = farm.start("alpha-restarted")
    # Deliver both tasks again, as a broker would after losing track of them.
    dispatcher = CeleryDispatcher.from_settings(api.app.state.settings)
    try:
        for job_id in (running, queued):
            dispatcher.enqueue(job_id, queue="cpu")
    finally:
        dispatcher.close()
    client_redis = api.app.state.store.client
    wait_until(lambda: not job_ids_in_broker(client_redis, ["cpu"]), 30,
               "the worker to take the redelivered tasks")
    time.sleep(0.5)
    for job_id, old in before.items():
        now = client.get(f"/v1/experiments/{job_id}").json()
        assert now["status"] == "cancelled"
        assert (now["attempts"], now["progress"], now["updated_at"]) == (
            old["attempts"], old["progress"], old["updated_at"])
    assert before[queued]["attempts"] == 0  # the queued one never started at all
    assert "nothing to do" in restarted.output()


def test_a_batched_seeds_job_shows_progress_and_stops_every_seed_with_its_partial_result(
        farm, client):
    live_worker(farm)
    job_id = submit(client, spec(40_000, seeds=[0, 1, 2]))
    progress: dict[str, Any] = {}

    def moving() -> bool:
        progress.update(client.get(f"/v1/experiments/{job_id}").json()["progress"] or {})
        return int(progress.get("step", 0)) > 0

    wait_until(moving, 60, "the batched job to make progress")
    assert (progress["seeds"], progress["seeds_live"], progress["total_steps"]) == (3, 3, 40_000)
    assert client.post(f"/v1/experiments/{job_id}/cancel").status_code == 202
    job = wait_final(client, job_id, timeout=10)
    assert job["status"] == "cancelled"
    result = job["result"]
    assert result["summary"]["outcome"] == "stopped"
    seeds = result["seeds"]
    assert seeds["batched"] is True and seeds["fallback"] is None
    runs = seeds["runs"]
    assert [r["seed"] for r in runs] == [0, 1, 2]
    assert {r["outcome"] for r in runs} == {"stopped"}
    steps = {r["steps"] for r in runs}
    assert len(steps) == 1 and 0 < steps.pop() < 40_000  # all at the same step, partial
    assert all(r["final_train_loss"] is not None for r in runs)
    assert seeds["spread"]["final_train_loss"]["n"] == 3


def test_a_sweep_cohort_trains_together_and_each_point_cancels_alone(farm, client):
    live_worker(farm)
    response = client.post("/v1/sweeps", json={
        "name": "cohort", "base": spec(40_000), "axes": {"optimizer.lr": [0.01, 0.02, 0.04]}})
    assert response.status_code == 202, response.text
    sweep_id, jobs = response.json()["id"], response.json()["job_ids"]
    progress: dict[str, dict[str, Any]] = {}

    def all_moving() -> bool:
        for job_id in jobs:
            progress[job_id] = client.get(f"/v1/experiments/{job_id}").json()["progress"] or {}
        return all(int(p.get("step", 0)) > 0 for p in progress.values())

    wait_until(all_moving, 60, "every point of the cohort to make progress")
    # one worker trains all three at once: each job shows its own progress of the cohort
    assert all(p["cohort"] == {"size": 3, "live": 3} for p in progress.values()), progress
    assert client.post(f"/v1/experiments/{jobs[1]}/cancel").status_code == 202
    cancelled = wait_final(client, jobs[1], timeout=10)
    assert cancelled["status"] == "cancelled"
    others = [client.get(f"/v1/experiments/{j}").json() for j in (jobs[0], jobs[2])]
    assert [o["status"] for o in others] == ["running", "running"]  # the rest go on
    assert client.post(f"/v1/sweeps/{sweep_id}/cancel").status_code in (200, 202)
    results = [cancelled["result"], *(wait_final(client, j, timeout=10)["result"]
                                      for j in (jobs[0], jobs[2]))]
    for index, result in zip((1, 0, 2), results, strict=True):
        assert result["cohort"] == {"size": 3, "index": index, "batched": True,
                                    "fallback": None, "job_ids": jobs}
        assert result["summary"]["outcome"] == "stopped"
        assert 0 < result["summary"]["steps"] < 40_000
    assert results[0]["summary"]["steps"] < results[1]["summary"]["steps"]


def test_a_sigkilled_worker_loses_no_job(farm, client):
    victim = live_worker(farm)
    job_id = submit(client, spec(1500))
    wait_until(lambda: (client.get(f"/v1/experiments/{job_id}").json()["progress"] or {})
               .get("step", 0) >= 200, 60, "the job to make progress")

    victim.kill()  # the main process and its child: nothing acknowledges or requeues
    assert victim.proc.poll() is not None
    lost = client.get(f"/v1/experiments/{job_id}").json()
    assert lost["status"] == "running"  # as the dead worker left it

    farm.start("rescuer")
    job = wait_final(client, job_id, timeout=60)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 2
    assert job["worker"].startswith("rescuer@")
    assert job["result"]["summary"]["steps"] == 1500
    # the reaper of whichever live worker took the reaping lock (the notifier's, or the
    # rescuer's) put the job back
    logs = "".join(w.output() for w in farm.workers)
    assert any(s in logs for s in ("was lost", "re-queued", "sending it again"))
