"""The web UI's pages and the report additions, drawn from real results (short runs through the
runner) and real job records: the runs page (rows, verdicts, filters, absolute links), the
compare page (overlaid plots, findings side by side), the report's spec and slope/linearity
sections; and the ``/ui`` routes' refusals on the real API."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from service.reports.html import experiment_report, sweep_report
from service.reports.plots import overlay_gradient_flow, overlay_loss, render
from service.web.pages import compare_page, labels_of, runs_page
from worker.core.errors import PlotUnavailable
from worker.jobs.redis_store import RedisJobStore

BASE = "http://ui.test:8123/prefix"
DB = 6  # as tests/service/test_reports.py: flushed by each test that uses it


def spec(name: str, activation: str, **model) -> dict[str, Any]:
    return {
        "spec_version": 1, "name": name,
        "model": {"family": "mlp", "depth": 6, "width": 16, "activation": activation, **model},
        "data": {"kind": "spirals", "n_train": 128, "n_val": 32},
        "training": {"steps": 20, "batch_size": 16, "device": "cpu"},
        "diagnostics": {"preset": "standard", "probe_batch_size": 32, "interpolation_points": 5},
    }


SPECS = {"sigmoid": spec("sigmoid <i>deep</i>", "sigmoid"),
         "residual": spec("relu + residual", "relu", residual=True)}


@pytest.fixture(scope="module")
def results():
    import torch

    from worker.compute.pipeline import run_experiment
    from worker.core.spec import ExperimentSpec

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {k: run_experiment(ExperimentSpec.model_validate(doc)) for k, doc in SPECS.items()}
    finally:
        torch.set_num_threads(threads)


@pytest.fixture
def jobs(redis_server, results):
    """The two experiments as finished job records in a real store (and a queued third)."""
    client = redis_server.client(DB)
    client.flushdb()
    store = RedisJobStore(client, prefix="w", retention_seconds=600)
    out = {}
    for key, doc in SPECS.items():
        record = store.create(json.dumps(doc), name=doc["name"], queue="cpu", tags=[key, "ui"],
                              sweep_id="5" * 32 if key == "residual" else None)
        store.start(record.id, worker="w")
        store.finish(record.id, "succeeded", attempt=1, result=results[key])
        out[key] = store.get(record.id)
    out["queued"] = store.get(store.create(json.dumps(SPECS["sigmoid"]), name=None,
                                           queue="cpu").id)
    return out


def test_the_runs_page_shows_each_run_with_its_verdict_and_links(jobs):
    listed = [jobs["queued"], jobs["residual"], jobs["sigmoid"]]
    page = runs_page(listed, base=BASE, status=None, tag="ui", sweep=None, next_cursor="CUR")
    assert page.count("<tr data-id=") == 3
    sigmoid = jobs["sigmoid"]
    assert sigmoid.headline and sigmoid.top_finding
    assert sigmoid.headline.replace("'", "&#x27;") in page
    assert f"<code>{sigmoid.top_finding[0]}</code>" in page
    assert "sigmoid &lt;i&gt;deep&lt;/i&gt;" in page and "<i>deep" not in page
    links = re.findall(r'(?:href|action)="([^"]+)"', page)
    assert links and all(link.startswith(BASE + "/") for link in links), links
    assert f'{BASE}/v1/experiments/{sigmoid.id}/report' in links
    assert f'{BASE}/v1/sweeps/{"5" * 32}/report' in links
    assert f"{BASE}/ui?tag=ui&amp;cursor=CUR" in page  # the next page keeps the filter
    assert '<input name="tag" value="ui"' in page  # the form shows the filter in force


def test_the_compare_page_overlays_plots_and_puts_findings_side_by_side(jobs):
    chosen = [jobs["sigmoid"], jobs["residual"]]
    page = compare_page(chosen, base=BASE)
    assert page.count("<svg") == 2
    assert 'data-plot="gradient_flow_overlay"' in page and 'data-plot="loss_overlay"' in page
    assert page.count("<section data-id=") == 2
    for job in chosen:
        for finding in job.result["findings"]:
            assert f"<code>{finding['code']}</code>" in page
    assert "vanishing_gradients_at_init" in page  # the sigmoid's, not the residual net's
    assert f"{BASE}/v1/experiments/{chosen[1].id}/report" in page
    # both labels on the plots (matplotlib keeps SVG text as text)
    assert "sigmoid &lt;i&gt;deep&lt;/i&gt;" in page and "relu + residual" in page


def test_a_compare_page_with_a_job_without_result_says_so(jobs):
    page = compare_page([jobs["sigmoid"], jobs["queued"]], base=BASE)
    assert "no result (queued)" in page and page.count("<svg") == 2


def test_labels_tell_apart_experiments_of_the_same_name(jobs):
    same = [jobs["sigmoid"], jobs["sigmoid"]]
    first, second = labels_of(same)
    assert first == second and first.startswith("sigmoid <i>deep</i> (")


def test_overlays_need_data(results):
    assert b"<svg" in render(overlay_gradient_flow([("a", results["sigmoid"])]), "svg")
    with pytest.raises(PlotUnavailable, match="gradient_flow"):
        overlay_gradient_flow([("a", {"curves": results["sigmoid"]["curves"]})])
    with pytest.raises(PlotUnavailable, match="loss"):
        overlay_loss([("a", {})])


def test_the_report_shows_the_spec_slope_and_linearity_with_absolute_links(jobs):
    job = jobs["residual"]
    page = experiment_report(job, base=BASE)
    assert '<pre id="spec">' in page and "&quot;residual&quot;: true" in page
    assert 'id="linearity"' in page and "slope coverage" in page
    assert "Local linearity" in page and "interpolation: largest bump" in page
    links = re.findall(r'<a href="([^"]+)"', page)
    assert f"{BASE}/v1/sweeps/{'5' * 32}/report" in links and f"{BASE}/ui" in links
    assert all(link.startswith(BASE) for link in links), links


def test_the_sweep_report_links_are_absolute(results):
    from worker.core.sweeps import table_row

    rows = [table_row(0, {"model.depth": 2}, ["a" * 32], "succeeded", results["sigmoid"])]
    page = sweep_report(sweep_id="s", name=None, varied=["model.depth"], rows=rows,
                        progress={"succeeded": 1}, done=True, base=BASE)
    assert f'href="{BASE}/v1/experiments/{"a" * 32}/report"' in page
    assert f'href="{BASE}/ui?sweep=s"' in page


# --- the routes on the real API -------------------------------------------------------------

@pytest.mark.parametrize(("query", "field"), [
    ("status=done", "status"), ("tag=a%20b", "tag"), ("sweep=xyz", "sweep"),
    ("cursor=!!", "cursor"), ("limit=0", "limit"),
])
def test_bad_runs_page_filters_are_422_naming_the_parameter(api, query, field):
    response = api.get(f"/ui?{query}")
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"][0]["field"] == field


def test_empty_form_fields_mean_no_filter(api):
    response = api.get("/ui?status=&tag=&sweep=")
    assert response.status_code == 200 and "No runs match." in response.text


@pytest.mark.parametrize(("query", "status"), [
    ("ids=" + "a" * 32, 422), ("ids=" + ",".join(["a" * 32] * 2), 422),
    ("ids=" + ",".join(f"{i:032x}" for i in range(9)), 422), ("", 422),
    ("ids=" + "a" * 32 + "," + "b" * 32, 404),
])
def test_compare_takes_two_to_eight_known_ids(api, query, status):
    response = api.get(f"/ui/compare?{query}")
    assert response.status_code == status, response.text
    if status == 422:
        assert response.json()["errors"][0]["field"] == "ids"
