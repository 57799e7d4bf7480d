"""The MLflow mapping (trainability_client/mlflow_export.py) against a real MLflow store: a
real result, logged to a file store the test creates, read back with MLflow's own client.

``mlflow_result.json`` beside this file is the spec and result of a real run (a 3-layer tanh
MLP on spirals, 20 steps, ``full`` diagnostics). It is checked against the result schema
here, so it cannot drift from what the worker writes; regenerate it with
``.venv/bin/python -m tests.client.test_mlflow_export``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from mlflow.tracking import MlflowClient

from trainability_client.mlflow_export import (
    EXPERIMENT_ID_TAG,
    MAX_PARAM_CHARS,
    NothingToExport,
    log_experiment,
    run_metrics,
    run_params,
)
from worker.core.result import ExperimentResult

FIXTURE = Path(__file__).with_name("mlflow_result.json")
ROOT = Path(__file__).resolve().parents[2]
JOB_ID = "0123456789abcdef0123456789abcdef"


def experiment_doc(**overrides: Any) -> dict[str, Any]:
    """The experiment as GET /v1/experiments/{id} returns it."""
    saved = json.loads(FIXTURE.read_text())
    return {"id": JOB_ID, "status": "succeeded", "name": "tiny-tanh", "tags": ["ci", "mlp"],
            "sweep_id": "fedcba9876543210fedcba9876543210", "spec": saved["spec"],
            "result": saved["result"], "created_at": "2026-03-01T12:00:00+00:00",
            "started_at": "2026-03-01T12:00:01+00:00",
            "finished_at": "2026-03-01T12:00:04.500000+00:00", **overrides}


@pytest.fixture
def store_uri(tmp_path, monkeypatch) -> str:
    # MLflow 3 keeps the file store in maintenance mode behind this switch; it needs nothing
    # beyond mlflow-skinny (sqlite needs SQLAlchemy and alembic, and seconds of migrations).
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    return str((tmp_path / "mlruns").as_uri())


def test_the_fixture_is_a_result_the_worker_writes() -> None:
    ExperimentResult.model_validate(json.loads(FIXTURE.read_text())["result"])


def test_a_result_reads_back_as_one_run(store_uri: str, tmp_path: Path) -> None:
    doc = experiment_doc()
    result = doc["result"]
    exported = log_experiment(doc, store_uri, experiment="designs")
    assert exported.created and exported.params > 40 and exported.metrics > 300

    client = MlflowClient(tracking_uri=store_uri)
    experiment = client.get_experiment_by_name("designs")
    assert experiment is not None and experiment.experiment_id == exported.experiment_id
    run = client.get_run(exported.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "tiny-tanh"
    assert run.info.start_time == 1772366401000 and run.info.end_time == 1772366404500

    params = run.data.params
    assert params["model.family"] == "mlp" and params["model.depth"] == "3"
    assert params["model.activation"] == "tanh" and params["optimizer.lr"] == "0.05"
    assert params["training.steps"] == "20" and params["diagnostics.preset"] == "full"
    assert params["diagnostics.linearity_scales"] == "[0.001,0.01,0.1,1.0]"

    tags = run.data.tags
    flow = result["gradient_flow"]["probes"]
    assert tags[EXPERIMENT_ID_TAG] == JOB_ID
    assert tags["trainability.sweep_id"] == doc["sweep_id"]
    assert tags["trainability.verdict"] == flow[0]["verdict"]
    assert tags["trainability.verdict_end"] == flow[-1]["verdict"]
    assert tags["trainability.status"] == "succeeded"
    assert tags["trainability.outcome"] == "completed"
    assert tags["trainability.tags"] == "ci,mlp"
    assert tags["trainability.headline"] == result["headline"]
    assert tags["trainability.top_finding"] == f"{result['findings'][0]['code']}:info"
    assert tags["trainability.export"] == "complete"

    def history(key: str) -> list[tuple[int, float]]:
        return sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))

    curves = result["curves"]
    assert history("train_loss") == list(zip(curves["step"], curves["train_loss"], strict=True))
    assert history("val_loss") == list(zip(curves["eval_step"], curves["val_loss"],
                                           strict=True))
    assert history("gradient_flow/end_to_end_ratio") == [
        (p["step"], p["end_to_end_ratio"]) for p in flow]
    assert history("gradient_flow/weight_norm/1") == [(p["step"], p["weight_norm"][1])
                                                      for p in flow]
    layer = result["linearity"]["probes"][0]["nonlinearities"][0]["layer"]
    assert history(f"linearity/nonlinearities/{layer}/slope_coverage") == [
        (p["step"], p["nonlinearities"][0]["slope_coverage"])
        for p in result["linearity"]["probes"]]
    alignment = result["trajectory"]["alignment"]
    assert history("trajectory/alignment/cosine") == list(zip(alignment["steps"],
                                                              alignment["cosine"], strict=True))
    assert history("curvature/top_eigenvalue") == [
        (p["step"], p["top_eigenvalue"]) for p in result["curvature"]["probes"]]
    assert history("summary/final_val_loss") == [(20, result["summary"]["final_val_loss"])]

    names = sorted(a.path for a in client.list_artifacts(run.info.run_id))
    assert names == ["findings.json", "result.json", "spec.json"]
    local = Path(client.download_artifacts(run.info.run_id, "result.json", str(tmp_path)))
    assert json.loads(local.read_text()) == result
    local = Path(client.download_artifacts(run.info.run_id, "findings.json", str(tmp_path)))
    assert json.loads(local.read_text()) == result["findings"]


def test_exporting_again_finds_the_run_and_a_half_export_is_redone(store_uri: str) -> None:
    first = log_experiment(experiment_doc(), store_uri)
    again = log_experiment(experiment_doc(), store_uri)
    assert (again.run_id, again.created) == (first.run_id, False)

    # an export that died half-way: a run with the experiment's id but no completion mark
    client = MlflowClient(tracking_uri=store_uri)
    other = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
    half = client.create_run(first.experiment_id, tags={EXPERIMENT_ID_TAG: other})
    redone = log_experiment(experiment_doc(id=other, status="timed_out"), store_uri)
    assert redone.created and redone.run_id != half.info.run_id
    assert client.get_run(half.info.run_id).info.lifecycle_stage == "deleted"
    runs = client.search_runs([first.experiment_id],
                              filter_string=f"tags.`{EXPERIMENT_ID_TAG}` = '{other}'")
    assert [r.info.run_id for r in runs] == [redone.run_id]
    assert runs[0].info.status == "KILLED"  # partial results: stopped before the end


def test_a_job_without_a_result_is_not_exported(store_uri: str) -> None:
    with pytest.raises(NothingToExport):
        log_experiment(experiment_doc(status="failed", result=None), store_uri)


def test_long_values_are_cut_and_nulls_left_out() -> None:
    params = run_params({"data": {"kind": "inline", "x": [[0.5] * 8] * 200},
                         "model": {"layers": [{"kind": "linear", "width": 4}]}})
    assert params["model.layers.0.kind"] == "linear"
    assert len(params["data.x"]) == MAX_PARAM_CHARS and params["data.x"].endswith("…")
    points = run_metrics({"curves": {"step": [0, 1, 2], "train_loss": [1.0, None, 0.5],
                                     "eval_step": [], "train_eval_loss": [], "val_loss": [],
                                     "train_accuracy": [], "val_accuracy": []},
                          "gradient_flow": {"probes": [{"step": 0, "gains": [1.0, None],
                                                        "verdict": "healthy"}]}})
    assert [(p.key, p.step, p.value) for p in points] == [
        ("train_loss", 0, 1.0), ("train_loss", 2, 0.5), ("gradient_flow/gains/0", 0, 1.0)]


def test_importing_the_commands_and_the_worker_tasks_leaves_mlflow_unimported() -> None:
    code = ("import sys, trainability_client.cli, trainability_client.export_cli, "
            "worker.runtime.tasks, service.main\n"
            "assert 'mlflow' not in sys.modules, 'mlflow was imported'\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]


def _regenerate() -> None:
    """Run the fixture's experiment again and write its spec and result."""
    from worker.compute.pipeline import run_experiment
    from worker.core.spec import ExperimentSpec

    spec = ExperimentSpec.model_validate({
        "spec_version": 1, "name": "tiny",
        "model": {"family": "mlp", "depth": 3, "width": 8, "activation": "tanh"},
        "data": {"kind": "spirals", "n_train": 64, "n_val": 32},
        "training": {"steps": 20, "batch_size": 16, "device": "cpu", "seed": 1},
        "diagnostics": {"preset": "full"},
    })
    result = run_experiment(spec)
    FIXTURE.write_text(json.dumps({"spec": spec.model_dump(mode="json"), "result": result}))


if __name__ == "__main__":
    _regenerate()
