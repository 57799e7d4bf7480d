"""Remedies end to end with the real worker: a depth-8 sigmoid MLP at PyTorch's default init
on spirals has vanishing gradients at initialization; its fixes run as twins (same data, seed
and budget), and the ReLU + He and the residual twins lose the finding and train to a lower
loss. Through the Python client (sync and async), the CLI and the HTML report."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from trainability_client import AsyncClient, Client, RemedyFix

ROOT = Path(__file__).resolve().parents[2]
VANISHING = "vanishing_gradients_at_init"
SPEC: dict[str, Any] = {
    "spec_version": 1,
    "name": "remedies: depth-8 sigmoid, default init",
    "model": {"family": "mlp", "depth": 8, "width": 32, "activation": "sigmoid"},
    "data": {"kind": "spirals", "n_train": 512, "n_val": 128},
    "optimizer": {"lr": 0.05, "momentum": 0.9},
    "training": {"steps": 300, "batch_size": 64, "seed": 0, "device": "cpu"},
    "diagnostics": {"preset": "basic"},
}


def has_edit(fix: RemedyFix, path: str, value: Any) -> bool:
    return {"path": path, "value": value} in fix.edits


@pytest.fixture(scope="module")
def remedied(e2e_server):
    """The finished deep sigmoid job and its remedies, once every twin has ended."""
    with Client(e2e_server.url) as client:
        job = client.submit(SPEC, wait=True, timeout=180)
        assert job.status == "succeeded", job.error
        remedies = client.start_remedies(job.id, wait=True, timeout=300)
    return job, remedies


def test_the_relu_and_residual_twins_lose_the_vanishing_finding_and_train_better(remedied):
    job, remedies = remedied
    vanishing = next(f for f in job.result["findings"] if f["code"] == VANISHING)
    assert vanishing["severity"] == "critical" and len(vanishing["fixes"]) >= 2
    assert remedies.done and remedies.before["findings"][0] == VANISHING
    print(f"\nbefore: val loss {remedies.before['final_val_loss']:.4f} "
          f"(share {remedies.before['loss_share']:.3f}), "
          f"grad@0 {remedies.before['grad_ratio_init']:.3g}")
    for fix in remedies.fixes:
        print(f"  {fix.rank}. {fix.label}: {fix.status}, resolved {fix.resolved}, val loss "
              f"{fix.val_loss_before:.4f} -> {fix.val_loss_after:.4f} (share "
              f"{fix.loss_share_before:.3f} -> {fix.loss_share_after:.3f}), grad@0 "
              f"{fix.grad_ratio_before:.3g} -> {fix.grad_ratio_after:.3g}")
    assert all(f.status == "succeeded" for f in remedies.fixes)
    relu = next(f for f in remedies.fixes if has_edit(f, "model.activation", "relu"))
    residual = next(f for f in remedies.fixes if has_edit(f, "model.residual", True))
    for fix in (relu, residual):
        assert VANISHING in fix.targets
        assert fix.resolved[VANISHING] is True, fix.label
        assert fix.val_loss_after < fix.val_loss_before, fix.label
        assert fix.grad_ratio_after > 100 * fix.grad_ratio_before, fix.label
    assert relu.val_loss_after < 0.5 * relu.val_loss_before  # ReLU + He learns the spirals
    assert [f.rank for f in remedies.fixes] == list(range(1, len(remedies.fixes) + 1))
    assert remedies.fixes[0].resolved_all is True


def test_the_twins_are_the_jobs_spec_with_only_the_fixs_edits(e2e_server, remedied):
    job, remedies = remedied
    with Client(e2e_server.url) as client:
        sweep = client.sweep(remedies.sweep_id)
        assert sweep.done and sweep.varied == ["variant"]
        assert {r.values["variant"] for r in sweep.table} == {f.label for f in remedies.fixes}
        for fix in remedies.fixes:
            twin = client.get(fix.job_id)
            assert twin.sweep_id == remedies.sweep_id
            assert twin.result["environment"]["seed"] == job.result["environment"]["seed"]
            changed = {k for k in ("model", "init", "data", "optimizer", "training")
                       if twin.raw["spec"][k] != job.raw["spec"][k]}
            assert changed == {e["path"].split(".")[0] for e in fix.edits}, fix.label


def test_a_second_start_returns_the_same_twins_sync_and_async(e2e_server, remedied):
    job, remedies = remedied
    with Client(e2e_server.url) as client:
        again = client.start_remedies(job.id)
    assert again.sweep_id == remedies.sweep_id and again.done

    async def fetch():
        async with AsyncClient(e2e_server.url) as client:
            return await client.start_remedies(job.id), await client.remedies(job.id)

    started, outcome = asyncio.run(fetch())
    assert started.sweep_id == outcome.sweep_id == remedies.sweep_id
    assert [f.label for f in outcome.fixes] == [f.label for f in remedies.fixes]


def cli(*args: str, url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAINABILITY_URL": url, "PYTHONPATH": str(ROOT)}
    env.pop("TRAINABILITY_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)


def test_the_cli_prints_the_ranked_before_after_table(e2e_server, remedied):
    job, remedies = remedied
    proc = cli("remedies", job.id, "--wait", url=e2e_server.url)
    assert proc.returncode == 0, proc.stderr
    print("\n" + proc.stdout)
    lines = proc.stdout.splitlines()
    assert lines[0].startswith(f"remedies of experiment {job.id}: {len(remedies.fixes)} fix")
    assert "done" in lines[0] and VANISHING in lines[1]
    header = next(i for i, line in enumerate(lines) if line.startswith("rank"))
    rows = lines[header + 2: header + 2 + len(remedies.fixes)]
    assert [r.split()[0] for r in rows] == [str(f.rank) for f in remedies.fixes]
    assert remedies.fixes[0].label in rows[0] and " -> " in rows[0]
    proc = cli("remedies", job.id, "--json", url=e2e_server.url)
    assert proc.returncode == 0 and json.loads(proc.stdout)["sweep_id"] == remedies.sweep_id
    missing = cli("remedies", "0" * 32, url=e2e_server.url)
    assert missing.returncode == 3 and "not found" in missing.stderr


def test_the_report_puts_each_fix_beside_the_original(e2e_server, remedied):
    job, remedies = remedied
    with Client(e2e_server.url) as client:
        page = client.report(job.id)
    section = page.split("id=\"remedies\"", 1)[1].split("<h2>", 1)[0]
    assert all(f.label in section for f in remedies.fixes)
    assert "still running" not in section and remedies.sweep_id in section
