"""The web UI against the real service (real Redis, real Celery worker, real training), looked
at in headless Chromium with the network off but for this machine (``tests/browser.py``):
the runs page, the compare page, an experiment's and a sweep's report, and a page saved to
disk whose links still reach the service. Screenshots are also copied to /tmp/ui-shots."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest

from tests.browser import assert_real_picture, dump_dom, keep_copy, screenshot
from trainability_client import Client


def spec(name: str, **model: Any) -> dict[str, Any]:
    return {
        "spec_version": 1, "name": name,
        "model": {"family": "mlp", "depth": 8, "width": 16, **model},
        "data": {"kind": "spirals", "n_train": 256, "n_val": 64},
        "optimizer": {"lr": 0.05, "momentum": 0.9},
        "training": {"steps": 60, "batch_size": 32, "seed": 0, "device": "cpu"},
        "diagnostics": {"preset": "standard", "probe_batch_size": 64,
                        "interpolation_points": 7},
    }


RUNS = {  # name -> (spec, tags); submitted in this order
    "sigmoid": (spec("sigmoid, depth 8", activation="sigmoid"), ["ui-demo", "saturating"]),
    "tanh": (spec("tanh, depth 8", activation="tanh"), ["ui-demo", "saturating"]),
    "residual": (spec("relu + residual, depth 8", activation="relu", residual=True),
                 ["ui-demo"]),
}


@pytest.fixture(scope="module")
def ui(e2e_server) -> dict[str, Any]:
    """The three runs and a small tagged sweep, all ended."""
    with Client(e2e_server.url) as client:
        jobs = {key: client.submit(doc, tags=tags).id for key, (doc, tags) in RUNS.items()}
        sweep = client.create_sweep(RUNS["residual"][0], {"model.depth": [2, 4]},
                                    name="ui sweep", tags=["ui-sweep"])
        for key, job_id in jobs.items():
            assert client.wait(job_id, timeout=240).status == "succeeded", key
        client.wait_sweep(sweep.id, timeout=240)
        records = {key: client.get(job_id) for key, job_id in jobs.items()}
    return {"jobs": jobs, "records": records, "sweep": sweep, "url": e2e_server.url}


def findings(record) -> list[str]:
    return [f["code"] for f in record.result["findings"]]


def test_the_runs_page(ui, tmp_path):
    url = f"{ui['url']}/ui?tag=ui-demo"
    dom = dump_dom(url, tmp_path)
    rows = re.findall(r'<tr data-id="([0-9a-f]{32})"', dom)
    assert rows == [ui["jobs"][k] for k in ("residual", "tanh", "sigmoid")]  # newest first
    sigmoid = ui["records"]["sigmoid"]
    assert "vanishing_gradients_at_init" in findings(sigmoid)
    assert sigmoid.result["headline"].split(":")[0] in dom  # the verdict, per row
    assert f"<code>{findings(sigmoid)[0]}</code>" in dom  # the headline finding
    assert 'class="sev-critical"' in dom and "Compare selected" in dom
    shot = screenshot(url, tmp_path / "runs.png", tmp_path, height=900)
    assert_real_picture(shot, min_height=900, coloured=0.0002)
    keep_copy(shot, "runs.png")

    everything = dump_dom(f"{ui['url']}/ui", tmp_path)
    for job_id in ui["sweep"].job_ids:  # the sweep's points, linked to the sweep's report
        assert f'data-id="{job_id}"' in everything
    assert f'{ui["url"]}/v1/sweeps/{ui["sweep"].id}/report' in everything
    saturating = dump_dom(f"{ui['url']}/ui?tag=saturating&status=succeeded", tmp_path)
    assert re.findall(r'<tr data-id="([0-9a-f]{32})"', saturating) == [
        ui["jobs"]["tanh"], ui["jobs"]["sigmoid"]]


def test_the_compare_page(ui, tmp_path):
    ids = ",".join(ui["jobs"].values())
    url = f"{ui['url']}/ui/compare?ids={ids}"
    dom = dump_dom(url, tmp_path)
    assert dom.count("<svg") == 2
    assert 'data-plot="gradient_flow_overlay"' in dom and 'data-plot="loss_overlay"' in dom
    assert len(re.findall(r'<section data-id="', dom)) == 3
    for record in ui["records"].values():
        assert record.name in dom
        for code in findings(record):
            assert f"<code>{code}</code>" in dom
    shot = screenshot(url, tmp_path / "compare.png", tmp_path, height=2400)
    assert_real_picture(shot)
    keep_copy(shot, "compare.png")


def test_an_experiment_report(ui, tmp_path):
    url = f"{ui['url']}/v1/experiments/{ui['jobs']['sigmoid']}/report"
    dom = dump_dom(url, tmp_path)
    assert '<pre id="spec">' in dom and '"activation": "sigmoid"' in dom  # the spec
    assert 'id="linearity"' in dom and "slope coverage" in dom
    assert dom.count("<svg") == 5  # standard: every plot
    shot = screenshot(url, tmp_path / "report.png", tmp_path, height=3000)
    assert_real_picture(shot)
    keep_copy(shot, "report.png")


def test_a_sweep_report(ui, tmp_path):
    url = f"{ui['url']}/v1/sweeps/{ui['sweep'].id}/report"
    dom = dump_dom(url, tmp_path)
    for job_id in ui["sweep"].job_ids:
        assert f'href="{ui["url"]}/v1/experiments/{job_id}/report"' in dom
    shot = screenshot(url, tmp_path / "sweep.png", tmp_path)
    assert_real_picture(shot)
    keep_copy(shot, "sweep-report.png")


def test_a_saved_page_still_links_to_the_service(ui, tmp_path):
    ids = ",".join(list(ui["jobs"].values())[:2])
    page = httpx.get(f"{ui['url']}/ui/compare?ids={ids}", timeout=60).text
    saved = tmp_path / "compare.html"
    saved.write_text(page)
    dom = dump_dom(saved.as_uri(), tmp_path)
    links = set(re.findall(r'<a href="([^"]+)"', dom))
    assert links and all(link.startswith(ui["url"] + "/") for link in links), links
    for link in links:  # every link of the saved page answers
        assert httpx.get(link.replace("&amp;", "&"), timeout=60).status_code == 200, link
    shot = screenshot(saved.as_uri(), tmp_path / "saved.png", tmp_path, height=2400)
    assert_real_picture(shot)
    keep_copy(shot, "saved-compare.png")
