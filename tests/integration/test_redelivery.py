"""A job runs once even when Redis redelivers its message while it runs (visibility timeout
shorter than the job, celery#5935): the second delivery finds the first attempt's live lease
and is dropped. Two pool processes, so the duplicate is taken while the job still runs."""

from __future__ import annotations

import re

import pytest

from tests.conftest import LiveServer, make_settings
from tests.integration.conftest import wait_final, wait_until

DB = 9
pytestmark = pytest.mark.integration

SPEC = {
    "spec_version": 1,
    "model": {"family": "mlp", "depth": 4, "width": 32},
    "data": {"kind": "spirals", "n_train": 512, "n_val": 64},
    "training": {"steps": 12_000, "batch_size": 32, "device": "cpu"},  # ~6 s
    "diagnostics": {"preset": "off"},
}


def test_a_redelivered_running_job_is_executed_once(redis_server, worker_farm):
    farm = worker_farm(DB)
    worker = farm.start("shortvis", app="tests.integration.short_visibility_app",
                        concurrency=2)
    with LiveServer(make_settings(redis_server, DB)) as api, api.client() as client:
        job_id = client.post("/v1/experiments", json=SPEC).json()["id"]
        wait_until(lambda: f"job {job_id} is already running" in worker.output(), 30,
                   "Redis to redeliver the running job's message")
        job = wait_final(client, job_id, timeout=60)
    assert job["status"] == "succeeded", job["error"]
    assert job["attempts"] == 1
    log = worker.output()
    assert len(re.findall(rf"job {job_id}: attempt \d+ on", log)) == 1  # executed once
    assert "dropping this duplicate delivery" in log
