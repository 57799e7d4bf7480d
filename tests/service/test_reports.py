"""Plots and HTML reports drawn from a real result (a short run through the runner)."""

from __future__ import annotations

import copy
import json

import pytest

from service.reports.html import experiment_report, sweep_report
from service.reports.plots import EXPERIMENT_PLOTS, experiment_plot, render, sweep_plot
from worker.core.errors import PlotUnavailable
from worker.core.result import ExperimentResult
from worker.core.sweeps import table_row
from worker.jobs.redis_store import RedisJobStore

SPEC = {
    "spec_version": 1, "name": "tanh <b>bold</b>",
    "model": {"family": "mlp", "depth": 4, "width": 8, "activation": "tanh"},
    "data": {"kind": "spirals", "n_train": 128, "n_val": 32},
    "training": {"steps": 20, "batch_size": 16, "device": "cpu"},
    "diagnostics": {"preset": "standard", "probe_batch_size": 32, "interpolation_points": 5},
}


@pytest.fixture(scope="module")
def result():
    import torch

    from worker.compute.pipeline import run_experiment
    from worker.core.spec import ExperimentSpec

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        doc = run_experiment(ExperimentSpec.model_validate(SPEC))
    finally:
        torch.set_num_threads(threads)
    ExperimentResult.model_validate(doc)  # the plots read the documented result
    return doc


@pytest.fixture
def job(redis_server):
    """``job(result, status)``: a real job record in a real store, in that state."""
    client = redis_server.client(6)
    client.flushdb()
    store = RedisJobStore(client, prefix="r", retention_seconds=600)

    def make(result, status="succeeded"):
        record = store.create(json.dumps(SPEC), name=SPEC["name"], queue="cpu")
        if status != "queued":
            store.start(record.id, worker="w")
            store.finish(record.id, status, attempt=1, result=result)
        return store.get(record.id)

    return make


@pytest.mark.parametrize("name", sorted(EXPERIMENT_PLOTS))
def test_every_plot_renders_as_png_and_svg(result, name):
    png = render(experiment_plot(name, result), "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    svg = render(experiment_plot(name, result), "svg")
    assert b"<svg" in svg
    assert svg == render(experiment_plot(name, result), "svg")  # deterministic


def test_a_result_without_the_data_says_which_group_to_enable(result):
    basic = copy.deepcopy(result)
    basic["linearity"] = None
    with pytest.raises(PlotUnavailable, match="interpolation group"):
        experiment_plot("interpolation", basic)
    with pytest.raises(PlotUnavailable, match="no plot named"):
        experiment_plot("nope", result)


def test_the_experiment_page_escapes_and_embeds(result, job):
    page = experiment_report(job(result))
    assert "tanh &lt;b&gt;bold&lt;/b&gt;" in page and "<b>bold" not in page
    assert page.count("<svg") == len(EXPERIMENT_PLOTS)
    assert "<?xml" not in page and "Not shown" not in page


def test_the_page_of_a_point_trained_in_a_cohort_says_so(result, job):
    point = {**result, "cohort": {"size": 4, "index": 1, "batched": True, "fallback": None,
                                  "job_ids": ["a", "b", "c", "d"]}}
    ExperimentResult.model_validate(point)
    assert "trained with 3 other points of its sweep as one batched model" in experiment_report(
        job(point))
    assert "trained with" not in experiment_report(job(result))
    alone = {**result, "cohort": {"size": 1, "index": 0, "batched": False, "job_ids": ["a"],
                                  "fallback": "layer 0.lstm: LSTM has no batched kernel"}}
    assert ("trained alone, not with its sweep cohort: layer 0.lstm: LSTM has no batched "
            "kernel") in experiment_report(job(alone))


def test_a_queued_experiment_page_has_no_plots_but_no_error(job):
    page = experiment_report(job(None, status="queued"))
    assert "<svg" not in page and "Not shown" in page and ">queued<" in page


def test_sweep_plot_and_page(result):
    rows = [table_row(i, {"variant": v, "model.depth": d}, [f"j{i}"], "succeeded", result)
            for i, (v, d) in enumerate([("a", 2), ("a", 8), ("b", 2), ("b", 8)])]
    svg = render(sweep_plot("grad_ratio_init", rows, ["variant", "model.depth"]), "svg")
    assert b"model.depth" in svg
    page = sweep_report(sweep_id="s", name=None, varied=["variant", "model.depth"], rows=rows,
                        progress={"succeeded": 4}, done=True)
    assert page.count("<svg") == 6 and "still running" not in page
    with pytest.raises(PlotUnavailable):
        sweep_plot("grad_ratio_init", rows, ["variant", "model.depth"], x="nope")


def test_the_row_schema_and_the_plot_names_come_from_the_column_list():
    from typing import get_args

    from service.api.routes.reports import SweepPlotName
    from service.reports.html import TABLE_HEADERS
    from service.schemas.sweeps import SweepRow
    from worker.core.sweeps import COLUMNS, METRICS, RESULT_COLUMNS

    fields = list(SweepRow.model_fields)
    assert fields[:5] == ["point", "values", "job_id", "previous_job_ids", "status"]
    assert fields[5:] == [c.name for c in RESULT_COLUMNS]
    assert get_args(SweepPlotName) == METRICS
    assert list(TABLE_HEADERS) == list(COLUMNS)
