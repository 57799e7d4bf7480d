"""A hung Redis (SIGSTOP: connections stay open, nothing answers) under a real API.

Found on main: every request waited the full socket timeout times the retries (15 s), 60
pollers took every thread of the pool, and ``/healthz`` stalled with them. Now the request
path has a short Redis timeout and a circuit breaker (``worker/jobs/redis_conn.py``): once
Redis is known down, requests answer 503 with Retry-After at once; ``/healthz`` never waits
on the pool; and the API recovers by itself when Redis answers again.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from service.settings import ServiceSettings
from tests.conftest import LiveServer, wait_for
from tests.private_redis import own_redis

PROBLEM = "application/problem+json"
POLLERS = 100  # more than the 40 threads of the request pool
TIMEOUT_S = 1.5  # request_redis_timeout_s
SPEC = {
    "spec_version": 1,
    "model": {"family": "mlp", "depth": 2, "width": 8},
    "data": {"kind": "spirals", "n_train": 64, "n_val": 16},
    "training": {"steps": 5, "batch_size": 16, "device": "cpu"},
}


def timed(call) -> tuple[float, httpx.Response]:
    started = time.monotonic()
    response = call()
    return time.monotonic() - started, response


def test_hardening_3_a_frozen_redis_is_a_fast_503_and_healthz_stays_up(tmp_path):
    """Hardening item 3: a SIGSTOPped Redis costs one short timeout, then fast 503s."""
    with own_redis(tmp_path) as redis_server:
        settings = ServiceSettings(redis_url=redis_server.url(), retry_after_s=2,
                                   request_redis_timeout_s=TIMEOUT_S, redis_breaker_open_s=1.5)
        # the pollers share one client (one connection each); the probe has its own
        with LiveServer(settings) as api, api.client() as client, api.client() as probe, \
                httpx.Client(base_url=api.url, timeout=30,
                              limits=httpx.Limits(max_connections=POLLERS)) as pollers, \
                ThreadPoolExecutor(POLLERS) as pool:
            job_id = client.post("/v1/experiments", json=SPEC).json()["id"]
            path = f"/v1/experiments/{job_id}"
            redis_server.freeze()
            try:
                started = time.monotonic()
                polls = [pool.submit(pollers.get, path) for _ in range(POLLERS)]
                time.sleep(0.15)  # the pollers hold the pool's threads, waiting on Redis
                health = [timed(lambda: probe.get("/healthz")) for _ in range(3)]
                answers = [poll.result() for poll in polls]
                wave_s = time.monotonic() - started
                after_s, after = timed(lambda: client.get(path))  # the breaker is open
                # a submission (its async script) meets the same breaker: refused at once
                post_s, posted = timed(lambda: client.post("/v1/experiments", json=SPEC))
            finally:
                redis_server.thaw()

            assert all(r.status_code == 200 for _, r in health)
            assert max(s for s, _ in health) < 0.5, [round(s, 3) for s, _ in health]
            assert {r.status_code for r in answers} == {503}, {r.status_code for r in answers}
            assert all(r.headers["retry-after"] == "2" and
                       r.headers["content-type"] == PROBLEM for r in answers)
            # one timeout for the first pollers; the others were refused without waiting
            assert wave_s < 3 * TIMEOUT_S, wave_s
            assert after.status_code == 503 and after.headers["retry-after"] == "2"
            assert after_s < 0.25, after_s
            assert posted.status_code == 503 and posted.headers["retry-after"] == "2"
            assert post_s < 0.25, post_s
            assert api.app.state.redis_breaker.trips >= 1

            # Redis answers again: after the open window one request tries it and closes the
            # breaker; the job is there, as it was
            wait_for(lambda: client.get(path).status_code == 200, 10,
                     "the API to use Redis again after SIGCONT")
            assert client.get(path).json()["status"] == "queued"
            assert client.post("/v1/experiments", json=SPEC).status_code == 202
