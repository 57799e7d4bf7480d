"""Load: 60 small jobs submitted concurrently through the API to 2 workers; every one ends
``succeeded`` as attempt 1, none lost, none executed twice (``bench/load_jobs.py`` runs the
same checks with 500 jobs)."""

from __future__ import annotations

import pytest

from bench.load_jobs import run_load
from tests.conftest import LiveServer, make_settings

DB = 11
pytestmark = pytest.mark.integration


def test_sixty_concurrent_submissions_none_lost_or_duplicated(redis_server, worker_farm):
    farm = worker_farm(DB)
    workers = [farm.start(f"load{i}", queues="cpu,gpu") for i in range(2)]
    with LiveServer(make_settings(redis_server, DB)) as api, api.client() as client:
        report = run_load(client, 60, threads=12, broker=redis_server.client(DB),
                          worker_logs=[w.log for w in workers], timeout=120)
    print("\n".join(report.lines()))
    assert report.ok, report.problems
    assert report.statuses == {"succeeded": 60}
    # both workers took a share
    shares = [w.output().count(": attempt 1 on") for w in workers]
    assert sum(shares) == 60 and min(shares) > 0, shares
