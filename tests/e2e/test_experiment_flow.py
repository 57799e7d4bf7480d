"""Whole service: HTTP API + real Redis + real Celery worker (prefork) + real training.

The seed claims, end to end: a deep sigmoid MLP at PyTorch's default init has vanishing
gradients at initialization; ReLU with Kaiming init does not; a huge learning rate diverges
and that is a result (the job succeeds with ``outcome: diverged``), not a failure.
"""

from __future__ import annotations

from typing import Any

import pytest


def mlp_spec(activation: str, init: dict[str, Any], **overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "spec_version": 1,
        "name": f"depth-12 {activation}",
        "model": {"family": "mlp", "depth": 12, "width": 32, "activation": activation},
        "init": init,
        "data": {"kind": "spirals", "n_train": 512, "n_val": 128},
        "optimizer": {"lr": 0.05, "momentum": 0.9},
        "training": {"steps": 100, "batch_size": 64, "seed": 0, "device": "cpu"},
        "diagnostics": {"preset": "basic", "probe_batch_size": 128},
    }
    doc.update(overrides)
    return doc


SPECS = {
    "sigmoid-default": mlp_spec("sigmoid", {"scheme": "default"}),
    "relu-kaiming": mlp_spec("relu", {"scheme": "kaiming_normal"}),
    # A deep linear net on a regression teacher with lr 50: the loss overflows within steps.
    "diverging": mlp_spec(
        "identity",
        {"scheme": "default"},
        model={"family": "mlp", "depth": 8, "width": 32, "activation": "identity"},
        data={
            "kind": "teacher",
            "task": "regression",
            "input_dim": 8,
            "output_dim": 2,
            "n_train": 512,
            "n_val": 128,
        },
        optimizer={"lr": 50.0, "momentum": 0.9},
    ),
}


@pytest.fixture(scope="module")
def finished(e2e_server, run_all):
    with e2e_server.client() as client:
        return run_all(client, SPECS)


def test_deep_sigmoid_at_default_init_vanishes_at_step_0(finished):
    job = finished["sigmoid-default"]
    assert job["status"] == "succeeded", job["error"]
    probe = job["result"]["gradient_flow"]["probes"][0]
    assert probe["step"] == 0
    assert probe["verdict"] == "vanishing", probe["end_to_end_ratio"]


def test_relu_with_kaiming_init_does_not_vanish(finished):
    job = finished["relu-kaiming"]
    assert job["status"] == "succeeded", job["error"]
    probe = job["result"]["gradient_flow"]["probes"][0]
    assert probe["step"] == 0
    assert probe["verdict"] != "vanishing", probe["end_to_end_ratio"]


def test_a_diverging_run_is_a_successful_job(finished):
    job = finished["diverging"]
    assert job["status"] == "succeeded", job["error"]
    summary = job["result"]["summary"]
    assert summary["outcome"] == "diverged"
    assert summary["steps"] < 100


def test_finished_jobs_record_the_attempt_worker_and_progress(finished):
    for key, job in finished.items():
        assert job["attempts"] == 1
        assert job["worker"].startswith("test-worker@")
        assert job["created_at"] <= job["started_at"] <= job["finished_at"]
        if key != "diverging":
            assert job["progress"]["step"] == job["progress"]["total_steps"] == 100


def test_the_worker_makes_the_service_ready(e2e_server):
    with e2e_server.client() as client:
        ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["workers"] == 1  # names and queues: operator keys only


def test_listing_shows_the_finished_jobs(e2e_server, finished):
    with e2e_server.client() as client:
        page = client.get("/v1/experiments", params={"status": "succeeded"}).json()
    listed = {job["id"] for job in page["data"]}
    assert {job["id"] for job in finished.values()} <= listed
