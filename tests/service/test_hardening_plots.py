"""Plots under load, on a real API and Redis.

Found on main: plots were drawn in the request threads under one global lock, so 45
concurrent ``gains.png`` took the whole thread pool and every sync route (and ``/healthz``)
stalled for 13 s; each request drew again; a result probed at every step drew thousands of
columns. Now a ``PlotRenderer`` (``service/reports/render.py``) draws off the request threads,
one drawing per (job, plot) at a time, caches the bytes of final jobs, refuses more than
``plot_max_pending`` waiting drawings (503 + Retry-After); figures cap what they draw.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from service.reports.plots import (
    MAX_HEATMAP_COLUMNS,
    MAX_LINE_POINTS,
    gradient_flow_heatmap,
    loss,
)
from tests.conftest import API_DB
from worker.jobs.redis_store import RedisJobStore

PROBLEM = "application/problem+json"
BURST = 45
POINTS = 50_000


def heavy(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with loss curves of ``POINTS`` points (a run logged at every step)."""
    steps = list(range(POINTS))
    return {**result, "curves": {
        "step": steps, "train_loss": [1.0 / (1 + s) for s in steps],
        "eval_step": steps[::10], "train_eval_loss": [1.0 / (1 + s) for s in steps[::10]],
        "val_loss": [1.2 / (1 + s) for s in steps[::10]], "train_accuracy": [],
        "val_accuracy": []}}


def final_job(store: RedisJobStore, result: dict[str, Any]) -> str:
    record = store.create(json.dumps({"spec_version": 1}), name=None, queue="cpu")
    store.start(record.id, worker="w")
    store.finish(record.id, "succeeded", attempt=1, result=result)
    return record.id


def timed_get(client: httpx.Client, path: str) -> float:
    started = time.monotonic()
    assert client.get(path).status_code == 200
    return time.monotonic() - started


@pytest.fixture
def fresh_server(server_with, redis_server):
    """``fresh_server(**settings)``: an API app of its own (a new renderer) on emptied API_DB."""
    redis_server.client(API_DB).flushdb()
    return server_with


def test_hardening_4_a_burst_of_one_plot_is_one_drawing_and_sync_routes_stay_fast(
        fresh_server, result_doc):
    """Hardening item 4: 45 concurrent requests of one plot draw once, off the request pool."""
    with fresh_server() as server, server.client() as client, server.client() as probe, \
            httpx.Client(base_url=server.url, timeout=60,
                         limits=httpx.Limits(max_connections=BURST)) as burst, \
            ThreadPoolExecutor(BURST) as pool:
        job_id = final_job(server.app.state.store, result_doc())
        plot = f"/v1/experiments/{job_id}/plots/loss.png"
        sync_route = f"/v1/experiments/{job_id}?fields=summary"  # a sync route: the pool
        renderer = server.app.state.plot_renderer

        pending = [pool.submit(burst.get, plot) for _ in range(BURST)]
        time.sleep(0.3)  # every request of the burst has arrived
        latencies = [timed_get(probe, sync_route), timed_get(probe, "/healthz"),
                     timed_get(probe, sync_route)]
        answers = [p.result() for p in pending]
        latencies.append(timed_get(probe, sync_route))

        assert max(latencies) < 1.0, latencies  # on main: seconds (45 drawings in turn)
        assert {r.status_code for r in answers} == {200}
        assert {r.headers["content-type"] for r in answers} == {"image/png"}
        assert len({r.content for r in answers}) == 1  # one drawing, shared
        assert renderer.drawn == 1
        again = client.get(plot)  # from the cache: not drawn again
        assert again.content == answers[0].content and renderer.drawn == 1


def test_hardening_4_plots_beyond_the_pending_limit_are_503_with_retry_after(
        fresh_server, result_doc):
    """Hardening item 4: at most plot_max_pending drawings wait; more are a fast 503."""
    with fresh_server(plot_max_pending=2, retry_after_s=3) as server, \
            httpx.Client(base_url=server.url, timeout=60,
                         limits=httpx.Limits(max_connections=12)) as burst, \
            ThreadPoolExecutor(12) as pool:
        # twelve jobs: twelve drawings (a drawing is shared only by requests of one plot)
        store = server.app.state.store
        plots = [f"/v1/experiments/{final_job(store, result_doc())}/plots/loss.svg"
                 for _ in range(12)]
        answers = list(pool.map(burst.get, plots))

    statuses = sorted(r.status_code for r in answers)
    assert set(statuses) == {200, 503}, statuses
    busy = [r for r in answers if r.status_code == 503]
    assert all(r.headers["retry-after"] == "3" and r.headers["content-type"] == PROBLEM
               for r in busy)
    assert busy[0].json()["type"].endswith(":plots-busy")


def test_hardening_4_a_heavy_result_draws_capped_points(result_doc):
    """Hardening item 4: a result with 50,000 points and 5,000 probes draws at most the caps."""
    figure = loss(heavy(result_doc()))
    drawn = [len(line.get_xdata()) for line in figure.axes[0].lines]
    assert drawn and max(drawn) <= MAX_LINE_POINTS, drawn
    probes = [{"step": s, "activation_grad_rms": [0.1, 0.2, 0.3]} for s in range(5_000)]
    heatmap = gradient_flow_heatmap({"gradient_flow": {"probes": probes,
                                                       "layers": ["a", "b", "c"]}})
    rows, columns = heatmap.axes[0].images[0].get_array().shape
    assert rows == 3 and columns <= MAX_HEATMAP_COLUMNS
