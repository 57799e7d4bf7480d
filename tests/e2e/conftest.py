"""Helpers for whole-service scenarios."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

FINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def _run_all(
    client: httpx.Client, specs: dict[str, dict[str, Any]], timeout_s: float = 300
) -> dict[str, dict[str, Any]]:
    """Submit every spec at once, then poll until each job is final (the worker runs them one
    after another); the final job records, by key."""
    ids = {}
    for key, doc in specs.items():
        response = client.post("/v1/experiments", json=doc)
        assert response.status_code == 202, response.text
        ids[key] = response.json()["id"]
    jobs: dict[str, dict[str, Any]] = {}
    deadline = time.monotonic() + timeout_s
    while len(jobs) < len(ids) and time.monotonic() < deadline:
        for key, job_id in ids.items():
            if key not in jobs:
                job = client.get(f"/v1/experiments/{job_id}").json()
                if job["status"] in FINAL:
                    jobs[key] = job
        time.sleep(0.25)
    missing = sorted(set(ids) - set(jobs))
    assert not missing, f"jobs not final after {timeout_s} s: {missing}"
    return jobs


@pytest.fixture(scope="session")
def run_all():
    """``run_all(client, specs, timeout_s=300)``: submit, wait, return final jobs by key."""
    return _run_all
