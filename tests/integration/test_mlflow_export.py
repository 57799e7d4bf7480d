"""Export to MLflow end to end: real API, real Redis, a real training worker and a real
notifier (the ``webhooks`` queue) with ``TRAINABILITY_MLFLOW_TRACKING_URI`` pointing at an
MLflow file store the test creates; every run is read back with MLflow's own client.

- a finished experiment appears as a run (params, metric histories, tags, artifacts), and
  ``GET /v1/experiments/{id}`` says where;
- a store that cannot be written is retried with backoff and ends ``failed``, the job still
  ``succeeded``;
- ``trainability export ID --mlflow URI`` logs the same experiment from the client side.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mlflow.tracking import MlflowClient

from tests.conftest import LiveServer, make_settings
from tests.integration.conftest import WorkerFarm, wait_final, wait_until
from trainability_client.cli import main

DB = 10  # as tests/integration/test_job_lifecycle.py: flushed by each module that uses it
EXPERIMENT = "integration"
pytestmark = pytest.mark.integration

SPEC: dict[str, Any] = {
    "spec_version": 1,
    "model": {"family": "mlp", "depth": 3, "width": 16, "activation": "tanh"},
    "data": {"kind": "spirals", "n_train": 128, "n_val": 64},
    "training": {"steps": 40, "batch_size": 32, "device": "cpu"},
    "diagnostics": {"preset": "basic"},
}


@pytest.fixture(scope="module", autouse=True)
def allow_file_store() -> Iterator[None]:
    """This process reads the store (and the CLI writes one): MLflow 3's file store is behind
    this switch (tests/client/test_mlflow_export.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
        yield


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory) -> Path:
    return Path(tmp_path_factory.mktemp("mlflow")) / "mlruns"


@pytest.fixture(scope="module")
def farm(redis_server, tmp_path_factory, store_dir) -> Iterator[WorkerFarm]:
    redis_server.client(DB).flushdb()
    farm = WorkerFarm(redis_server.url(DB), DB, tmp_path_factory.mktemp("mlflow-workers"), env={
        "TRAINABILITY_MLFLOW_TRACKING_URI": store_dir.as_uri(),
        "TRAINABILITY_MLFLOW_EXPERIMENT": EXPERIMENT,
        "MLFLOW_ALLOW_FILE_STORE": "true",
        "TRAINABILITY_WEBHOOK_RETRY_BACKOFF_S": "1",
        "TRAINABILITY_WEBHOOK_RETRY_BACKOFF_MAX_S": "1",
        "TRAINABILITY_WEBHOOK_MAX_RETRIES": "2",
    })
    farm.start("notifier", queues="webhooks")
    farm.start("trainer")
    yield farm
    farm.stop_all()


@pytest.fixture(scope="module")
def api(redis_server, farm) -> Iterator[LiveServer]:
    with LiveServer(make_settings(redis_server, DB)) as server:
        yield server


@pytest.fixture(scope="module")
def http(api) -> Iterator[httpx.Client]:
    with api.client() as client:
        yield client


def run_job(http: httpx.Client, name: str) -> dict[str, Any]:
    response = http.post("/v1/experiments", json={**SPEC, "name": name})
    assert response.status_code == 202, response.text
    job: dict[str, Any] = wait_final(http, response.json()["id"], timeout=120)
    return job


def wait_export(http: httpx.Client, job_id: str, states: set[str]) -> dict[str, Any]:
    def state() -> str | None:
        return (http.get(f"/v1/experiments/{job_id}").json().get("mlflow") or {}).get("state")

    wait_until(lambda: state() in states, 60, f"the MLflow export of {job_id} to end")
    job: dict[str, Any] = http.get(f"/v1/experiments/{job_id}").json()
    return job


@pytest.fixture(scope="module")
def exported(http, store_dir) -> dict[str, Any]:
    """An experiment the notifier exported: its final record (read once for the module)."""
    job = run_job(http, "exported")
    assert job["status"] == "succeeded", job
    return wait_export(http, job["id"], {"exported", "failed"})


def test_a_finished_experiment_appears_as_an_mlflow_run(exported, store_dir):
    state = exported["mlflow"]
    assert state["state"] == "exported", state
    assert state["attempts"] == 1 and state["last_error"] is None
    client = MlflowClient(tracking_uri=store_dir.as_uri())
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment.experiment_id == state["experiment_id"]
    run = client.get_run(state["run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == "exported"
    assert run.data.tags["trainability.experiment_id"] == exported["id"]
    result = exported["result"]
    assert run.data.tags["trainability.verdict"] == result["gradient_flow"]["probes"][0]["verdict"]
    assert run.data.params["model.width"] == "16" and run.data.params["training.steps"] == "40"
    curves = result["curves"]
    history = sorted((m.step, m.value)
                     for m in client.get_metric_history(run.info.run_id, "train_loss"))
    assert history == list(zip(curves["step"], curves["train_loss"], strict=True))
    steps = [m.step for m in client.get_metric_history(run.info.run_id,
                                                       "gradient_flow/end_to_end_ratio")]
    assert sorted(steps) == result["gradient_flow"]["probe_steps"]
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == [
        "findings.json", "result.json", "spec.json"]


def test_an_unwritable_store_is_retried_and_fails_without_touching_the_job(http, exported,
                                                                          store_dir):
    aside = store_dir.with_name("mlruns-aside")
    shutil.move(store_dir, aside)
    store_dir.write_text("a file where the store should be")
    try:
        job = run_job(http, "unexported")
        job = wait_export(http, job["id"], {"exported", "failed"})
    finally:
        store_dir.unlink()
        shutil.move(aside, store_dir)
    assert job["status"] == "succeeded" and job["result"] is not None
    state = job["mlflow"]
    assert state["state"] == "failed" and state["attempts"] == 3, state  # 1 + 2 retries
    assert "not a directory" in state["last_error"].lower() and state["run_id"] is None


def test_the_cli_exports_an_experiment_to_another_tracker(api, exported, store_dir, tmp_path,
                                                          capsys):
    other = (tmp_path / "team-mlruns").as_uri()
    argv = ["export", exported["id"], "--mlflow", other, "--experiment", "team",
            "--url", api.url, "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["created"] is True and out["id"] == exported["id"]
    theirs = MlflowClient(tracking_uri=other).get_run(out["run_id"])
    ours = MlflowClient(tracking_uri=store_dir.as_uri()).get_run(exported["mlflow"]["run_id"])
    # the same mapping on both sides: the same params, metrics and tags
    assert theirs.data.params == ours.data.params
    assert theirs.data.metrics == ours.data.metrics
    assert theirs.data.tags["trainability.experiment_id"] == exported["id"]

    assert main(argv) == 0  # again: the run is found, not logged twice
    assert json.loads(capsys.readouterr().out)["run_id"] == out["run_id"]
    assert main(["export", "f" * 32, "--mlflow", other, "--url", api.url]) == 3
