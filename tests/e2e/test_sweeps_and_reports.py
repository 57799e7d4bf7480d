"""The seed's comparison as one call, through the Python client, against the real service
(real Redis, real Celery worker, real training): activation x depth, with ReLU + residual.

Saturating activations lose the gradient with depth (sigmoid's end-to-end ratio at step 0 drops
by orders of magnitude from depth 2 to 10), ReLU + residual keeps it near 1. The reports and
plots are drawn from the stored results and looked at in headless Chromium.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.browser import assert_real_picture, dump_dom, screenshot
from trainability_client import AsyncClient, Client, Sweep

BASE: dict[str, Any] = {
    "spec_version": 1,
    "name": "showcase",
    "model": {"family": "mlp", "depth": 2, "width": 16, "activation": "relu"},
    "init": {"scheme": "normal", "gain": 1.0},
    "data": {"kind": "spirals", "n_train": 256, "n_val": 64},
    "optimizer": {"lr": 0.05, "momentum": 0.9},
    "training": {"steps": 30, "batch_size": 32, "seed": 0, "device": "cpu"},
    "diagnostics": {"preset": "basic", "probe_batch_size": 64},
}
VARIANTS = {
    "sigmoid": {"model.activation": "sigmoid"},
    "tanh": {"model.activation": "tanh"},
    "relu": {"model.activation": "relu", "init.scheme": "kaiming_normal", "init.gain": None},
    "relu+residual": {"model.activation": "relu", "model.residual": True, "init.gain": 0.5},
}
DOCS = Path(__file__).resolve().parents[2] / "docs"


@pytest.fixture(scope="module")
def client(e2e_server):
    with Client(e2e_server.url) as client:
        yield client


@pytest.fixture(scope="module")
def showcase(client) -> Sweep:
    accepted = client.create_sweep(BASE, {"model.depth": [2, 10]}, variants=VARIANTS,
                                   name="activation x depth")
    assert accepted.points == 8
    sweep: Sweep = client.wait_sweep(accepted.id, timeout=240)
    return sweep


def ratio(sweep: Sweep, variant: str, depth: int, column: str = "grad_ratio_init") -> float:
    (row,) = [r for r in sweep.table
              if r.values == {"variant": variant, "model.depth": depth}]
    value = row.get(column)
    assert isinstance(value, float), row
    return value


def test_every_point_ran(showcase):
    assert showcase.done and showcase.by_status["succeeded"] == 8
    assert all(r.outcome == "completed" for r in showcase.table)


def test_sigmoid_loses_the_gradient_with_depth(showcase):
    shallow, deep = ratio(showcase, "sigmoid", 2), ratio(showcase, "sigmoid", 10)
    assert deep < shallow * 1e-3, (shallow, deep)  # orders of magnitude
    assert deep < 1e-2
    (row,) = [r for r in showcase.table if r.values == {"variant": "sigmoid", "model.depth": 10}]
    assert row.verdict_init == "vanishing" and row.findings_critical + row.findings_warning > 0


def test_relu_with_residual_keeps_it(showcase):
    for depth in (2, 10):
        for column in ("grad_ratio_init", "grad_ratio_end"):
            assert 1e-1 <= ratio(showcase, "relu+residual", depth, column) <= 1e1


def test_at_depth_10_the_families_order_as_the_theory_says(showcase):
    at = {v: ratio(showcase, v, 10) for v in VARIANTS}
    assert at["sigmoid"] < at["tanh"] / 100
    assert at["tanh"] < at["relu+residual"] and at["relu"] < at["relu+residual"]


def test_the_table_sorts_by_any_column(client, showcase):
    by_ratio = client.sweep(showcase.id, sort="grad_ratio_init", order="asc").table
    assert by_ratio[0].values == {"variant": "sigmoid", "model.depth": 10}
    ratios = [r.grad_ratio_init for r in by_ratio]
    assert ratios == sorted(ratios)
    by_variant = client.sweep(showcase.id, sort="variant", order="desc").table
    assert [r.values["variant"] for r in by_variant][:2] == ["tanh", "tanh"]


def test_each_job_carries_its_sweep(client, showcase):
    job = client.get(showcase.table[0].job_id)
    assert job.sweep_id == showcase.id
    assert job.raw["spec"]["model"]["activation"] == "sigmoid"


def test_the_async_client_sees_the_same_sweep(e2e_server, showcase):
    async def fetch() -> tuple[Sweep, list[str]]:
        async with AsyncClient(e2e_server.url) as client:
            sweep = await client.sweep(showcase.id, sort="grad_ratio_init")
            ids = [item["id"] async for item in client.list(status="succeeded", page_size=3)]
            return sweep, ids

    sweep, ids = asyncio.run(fetch())
    assert [r.point for r in sweep.table][0] == 1
    assert {r.job_id for r in showcase.table} <= set(ids)


def test_plots_are_real_images(client, showcase):
    png = client.sweep_plot(showcase.id, "grad_ratio_init", "png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    svg = client.sweep_plot(showcase.id, "grad_ratio_init", "svg").decode()
    assert "<svg" in svg and "model.depth" in svg and "relu+residual" in svg
    job_id = showcase.table[0].job_id
    for name in ("gradient_flow_heatmap", "gains", "loss"):
        assert client.plot(job_id, name, "png")[:4] == b"\x89PNG"
        assert "<svg" in client.plot(job_id, name, "svg").decode()


def test_a_plot_the_result_cannot_support_is_404(client, showcase):
    from trainability_client import NotFound

    with pytest.raises(NotFound, match="interpolation"):
        client.plot(showcase.table[0].job_id, "interpolation", "svg")  # preset basic


def test_reports_embed_every_plot(client, showcase):
    page = client.sweep_report(showcase.id)
    # gradient ratio at init and at the end, train and val loss (basic: no MLI, no alignment)
    assert page.count("<svg") == 4
    for metric in ("grad_ratio_init", "grad_ratio_end", "final_train_loss", "final_val_loss"):
        assert f'data-plot="{metric}"' in page
    assert "relu+residual" in page
    job = client.report(showcase.table[1].job_id)
    assert 'data-plot="gradient_flow_heatmap"' in job and 'data-plot="gains"' in job
    assert "vanishing" in job


# --- headless Chromium (tests/browser.py) -------------------------------------------------

def test_the_sweep_report_renders_in_chromium(e2e_server, showcase, tmp_path):
    url = f"{e2e_server.url}/v1/sweeps/{showcase.id}/report"
    dom = dump_dom(url, tmp_path)
    assert dom.count("<svg") == 4 and 'data-plot="grad_ratio_init"' in dom
    assert "Traceback" not in dom and "Internal Server Error" not in dom
    assert "relu+residual" in dom and "vanishing" in dom
    shot = screenshot(url, tmp_path / "sweep.png", tmp_path)
    assert_real_picture(shot)
    if os.environ.get("TRAINABILITY_UPDATE_DOCS"):  # refresh the README's picture
        DOCS.mkdir(exist_ok=True)
        shutil.copy(shot, DOCS / "sweep-report.png")


def test_the_experiment_report_renders_in_chromium(e2e_server, showcase, tmp_path):
    job_id = showcase.table[1].job_id  # sigmoid at depth 10
    url = f"{e2e_server.url}/v1/experiments/{job_id}/report"
    dom = dump_dom(url, tmp_path)
    for name in ("gradient_flow_heatmap", "gains", "loss"):
        assert f'id="plot-{name}"' in dom
    assert dom.count("<svg") == 3 and "Not shown" in dom  # interpolation, alignment: basic
    assert_real_picture(screenshot(url, tmp_path / "job.png", tmp_path))
