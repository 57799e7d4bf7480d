"""Tags and filtered listings through the Python clients and ``trainability ls``, against the
real API and Redis (no worker: the jobs stay queued unless cancelled)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from trainability_client import AsyncClient, Client

ROOT = Path(__file__).resolve().parents[2]
SPEC = {
    "spec_version": 1,
    "model": {"family": "mlp", "depth": 2, "width": 8},
    "data": {"kind": "spirals", "n_train": 64, "n_val": 16},
    "training": {"steps": 5, "batch_size": 16, "device": "cpu"},
}


@pytest.fixture
def client(api, api_server):
    """A client of the API on an empty database (``api`` flushes it)."""
    with Client(api_server.url) as client:
        yield client


def ls(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAINABILITY_URL": url, "PYTHONPATH": str(ROOT)}
    env.pop("TRAINABILITY_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "service.cli", "ls", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60)


def test_submit_with_tags_and_list_by_every_filter(client):
    a = client.submit({**SPEC, "name": "a"}, tags=["exp", "lr-high"])
    b = client.submit({**SPEC, "name": "b"}, tags=["exp"])
    c = client.submit({**SPEC, "name": "c"})
    client.cancel(b.id)
    sweep = client.create_sweep(SPEC, {"model.depth": [1, 2]}, tags=["exp", "sw"])

    def ids(**filters) -> list[str]:
        return [item["id"] for item in client.list_experiments(page_size=1, **filters)]

    assert ids() == [*reversed(sweep.job_ids), c.id, b.id, a.id]
    assert ids(tag="exp") == [*reversed(sweep.job_ids), b.id, a.id]
    assert ids(tag=["exp", "lr-high"]) == [a.id]
    assert ids(tag="exp", status="cancelled") == [b.id]
    assert ids(sweep=sweep.id) == list(reversed(sweep.job_ids))
    assert ids(created_after=client.get(b.id).created_at) == [*reversed(sweep.job_ids), c.id]
    assert client.get(a.id).raw["tags"] == ["exp", "lr-high"]


def test_the_async_client_lists_with_the_same_filters(client, api_server):
    tagged = client.submit(SPEC, tags=["only"]).id
    client.submit(SPEC)

    async def listing() -> list[str]:
        async with AsyncClient(api_server.url) as aclient:
            return [item["id"] async for item in aclient.list_experiments(tag="only")]

    assert asyncio.run(listing()) == [tagged]


def test_ls_prints_one_line_per_experiment_newest_first(client, api_server):
    old = client.submit({**SPEC, "name": "old run"}, tags=["t1"]).id
    new = client.submit({**SPEC, "name": "new run"}, tags=["t1", "t2"]).id
    client.submit({**SPEC, "name": "other"})
    done = ls(api_server.url, "--tag", "t1")
    assert done.returncode == 0, done.stderr
    header, *lines = done.stdout.splitlines()
    assert header.split() == ["id", "status", "created", "name", "tags", "verdict"]
    assert [line.split()[0] for line in lines] == [new, old]
    assert "t1,t2" in lines[0] and "new run" in lines[0] and "queued" in lines[0]

    both = ls(api_server.url, "--tag", "t1", "--tag", "t2", "--status", "queued", "--json")
    assert [json.loads(line)["id"] for line in both.stdout.splitlines()] == [new]
    assert ls(api_server.url, "--limit", "2").stdout.count("\n") == 3  # header + 2


def test_ls_refuses_bad_filters_with_usage_exit_codes(api, api_server):
    bad_tag = ls(api_server.url, "--tag", "no spaces")
    assert bad_tag.returncode == 2 and "tag" in bad_tag.stderr
    bad_status = ls(api_server.url, "--status", "done")
    assert bad_status.returncode == 2 and "invalid choice" in bad_status.stderr
