"""A design that needs more memory than a training process may use fails its own job cleanly.

The worker caps each training process's address space (``worker/runtime/child.py``); a spec the
API let through (its budgets raised here on purpose) that allocates past the cap ends
``failed`` with an out-of-memory reason, and the same worker goes on to run the next job.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from tests.conftest import LiveServer, make_settings
from tests.integration.conftest import wait_final

DB = 8
CEILING = 2 << 30  # bytes of address space per training process
pytestmark = pytest.mark.integration


def spec(data: dict[str, Any]) -> dict[str, Any]:
    return {"spec_version": 1, "model": {"family": "mlp", "depth": 1, "width": 8},
            "data": data, "training": {"steps": 2, "batch_size": 16, "device": "cpu"},
            "diagnostics": {"preset": "off"}}


def test_a_job_past_the_memory_ceiling_fails_with_the_reason_and_the_worker_goes_on(
        redis_server, worker_farm):
    """Hardening item 1: RLIMIT_AS fails the one job that allocates too much, cleanly."""
    host = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    farm = worker_farm(DB, {"TRAINABILITY_WORKER_MEMORY_FRACTION": f"{CEILING / host:.6f}"})
    worker = farm.start("mem")
    # 600,000 x 1024 float32 inputs: 2.3 GiB of data alone, past the 2 GiB ceiling
    big = spec({"kind": "teacher", "input_dim": 1024, "n_train": 599_000, "n_val": 1000})
    small = spec({"kind": "spirals", "n_train": 64, "n_val": 16})
    settings = make_settings(redis_server, DB, max_data_bytes=1 << 40, max_memory_bytes=1 << 40)
    with LiveServer(settings) as server, server.client() as client:
        job = client.post("/v1/experiments", json=big).json()["id"]
        done = wait_final(client, job, timeout=120)
        assert done["status"] == "failed"
        assert done["error"].startswith("out of memory"), done["error"]
        after = client.post("/v1/experiments", json=small).json()["id"]
        assert wait_final(client, after, timeout=120)["status"] == "succeeded"
    assert "address space limited to 2.0 GiB" in worker.output()
    assert worker.proc.poll() is None
