"""The Python client and the ``trainability`` client commands against the real service:
results, progress, tables, and every error surfacing as a typed exception or a clear message
with its exit code (404 -> 3, 422 -> 2, 503 and no connection -> 4)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import free_port
from trainability_client import (
    Client,
    ConnectionFailed,
    NotFound,
    Unavailable,
    ValidationFailed,
    WaitTimeout,
)

ROOT = Path(__file__).resolve().parents[2]
SPEC: dict[str, Any] = {
    "spec_version": 1,
    "name": "cli tiny",
    "model": {"family": "mlp", "depth": 2, "width": 8, "activation": "tanh"},
    "data": {"kind": "spirals", "n_train": 128, "n_val": 32},
    "training": {"steps": 20, "batch_size": 16, "device": "cpu"},
    "diagnostics": {"preset": "basic", "probe_batch_size": 32},
}
MISSING = "0" * 32


def cli(*args: str, url: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TRAINABILITY_URL": url, "PYTHONPATH": str(ROOT)}
    env.pop("TRAINABILITY_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "service.cli", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    path: Path = tmp_path_factory.mktemp("specs") / "tiny.json"
    path.write_text(json.dumps(SPEC))
    return path


# --- the client ----------------------------------------------------------------------------

def test_submit_and_wait_returns_the_result(e2e_server):
    seen: list[str] = []
    with Client(e2e_server.url) as client:
        job = client.submit(SPEC, wait=True, timeout=120,
                            on_progress=lambda j: seen.append(j.status))
        assert job.status == "succeeded" and job.is_final
        assert client.result(job.id)["summary"]["steps"] == 20
        assert seen[-1] == "succeeded"
        assert job.id in {item["id"] for item in client.list(page_size=2)}


def test_typed_errors_from_the_real_service(e2e_server):
    with Client(e2e_server.url) as client:
        with pytest.raises(NotFound) as missing:
            client.get(MISSING)
        assert missing.value.status == 404 and missing.value.title == "Experiment not found"
        bad = {**SPEC, "model": {**SPEC["model"], "depth": 0}}
        with pytest.raises(ValidationFailed) as refused:
            client.submit(bad)
        assert [e["field"] for e in refused.value.errors] == ["model.depth"]
        with pytest.raises(ValidationFailed) as sweep_refused:
            client.create_sweep(SPEC, {"model.depth": [2, -1]})
        assert sweep_refused.value.errors[0]["point"] == 1
        with pytest.raises(NotFound):
            client.sweep(MISSING)
        with pytest.raises(WaitTimeout):
            job = client.submit({**SPEC, "training": {**SPEC["training"], "steps": 400}})
            client.wait(job.id, timeout=0.01)


def test_503_is_unavailable_with_retry_after(api_without_redis):
    with Client(api_without_redis.url) as client:
        with pytest.raises(Unavailable) as down:
            client.submit(SPEC)
    assert down.value.status == 503 and down.value.retry_after == 7
    assert not isinstance(down.value, ConnectionFailed)


def test_no_server_is_a_connection_failure():
    with Client(f"http://127.0.0.1:{free_port()}", timeout=5) as client:
        with pytest.raises(ConnectionFailed, match="cannot reach"):
            client.get(MISSING)


# --- the CLI -------------------------------------------------------------------------------

def test_cli_submit_wait_shows_progress_and_the_result(e2e_server, spec_file):
    done = cli("submit", str(spec_file), "--wait", url=e2e_server.url)
    assert done.returncode == 0, done.stderr
    assert "submitted experiment" in done.stderr and "succeeded" in done.stderr
    assert "/20" in done.stderr  # step/total on the progress line
    assert "succeeded" in done.stdout and "gradient flow" in done.stdout
    job_id = done.stdout.split()[1]

    status = cli("status", job_id, url=e2e_server.url)
    assert status.returncode == 0 and "succeeded" in status.stdout
    result = cli("result", job_id, "--json", url=e2e_server.url)
    assert result.returncode == 0
    assert json.loads(result.stdout)["summary"]["steps"] == 20


def test_cli_json_for_scripts(e2e_server, spec_file):
    done = cli("submit", str(spec_file), "--wait", "--json", url=e2e_server.url)
    assert done.returncode == 0, done.stderr
    job = json.loads(done.stdout)
    assert job["status"] == "succeeded" and job["result"]["summary"]["outcome"] == "completed"
    assert done.stderr == ""  # no progress noise in --json mode


def test_cli_sweep_prints_the_table_and_report_writes_html(e2e_server, spec_file, tmp_path):
    done = cli("sweep", str(spec_file), "--axis", "model.depth=2,3",
               "--variant", "sig:model.activation=sigmoid",
               "--variant", "relu+res:model.activation=relu,model.residual=true",
               "--wait", "--sort", "grad_ratio_init", url=e2e_server.url)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("sweep ")
    assert lines[1].split()[:5] == ["variant", "model.depth", "status", "outcome", "train_loss"]
    assert len(lines) == 3 + 4 and all("succeeded" in line for line in lines[3:])
    assert "4/4" in done.stderr
    assert "4 experiments queued\n" in done.stderr  # the variants differ: no cohort
    sweep_id = lines[0].split()[1]

    out = tmp_path / "report.html"
    report = cli("report", sweep_id, "--out", str(out), url=e2e_server.url)
    assert report.returncode == 0, report.stderr
    assert out.read_text().count("<svg") >= 2


def test_cli_sweep_says_which_points_train_together(e2e_server, spec_file):
    done = cli("sweep", str(spec_file), "--axis", "optimizer.lr=0.01,0.02,0.05",
               "--axis", "model.depth=2,3", "--wait", url=e2e_server.url)
    assert done.returncode == 0, done.stderr
    assert ("6 experiments queued (6 of them in 2 cohorts, each trained as one batched model)"
            in done.stderr)
    assert "6/6" in done.stderr


@pytest.mark.parametrize("args, code, message", [
    (["status", MISSING], 3, "not found: no experiment with id"),
    (["result", MISSING, "--json"], 3, "not found"),
    (["report", MISSING], 3, "not found: no sweep with id"),
    (["sweep", "SPEC", "--axis", "model.depth=2,0"], 2, "points.1.model.depth"),
    (["submit", "/nonexistent/spec.json"], 2, "cannot read input"),
    (["sweep", "SPEC", "--axis", "model.depth"], 2, "--axis wants PATH=V1,V2"),
])
def test_cli_errors_are_clear_with_exit_codes(e2e_server, spec_file, args, code, message):
    args = [str(spec_file) if a == "SPEC" else a for a in args]
    done = cli(*args, url=e2e_server.url)
    assert done.returncode == code, (done.stdout, done.stderr)
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_cli_when_redis_is_down_or_nothing_listens(api_without_redis, spec_file):
    down = cli("submit", str(spec_file), url=api_without_redis.url)
    assert down.returncode == 4
    assert "unavailable" in down.stderr and "retry after 7 s" in down.stderr
    closed = cli("status", MISSING, url=f"http://127.0.0.1:{free_port()}")
    assert closed.returncode == 4 and "cannot reach the trainability service" in closed.stderr


def test_cli_submit_of_an_invalid_spec_names_the_field(e2e_server, tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**SPEC, "model": {**SPEC["model"], "activation": "nope"}}))
    done = cli("submit", str(path), url=e2e_server.url)
    assert done.returncode == 2
    assert "refused" in done.stderr and "model.activation" in done.stderr


def test_cli_cancel_stops_an_experiment(e2e_server):
    with Client(e2e_server.url) as client:
        job = client.submit({**SPEC, "training": {**SPEC["training"], "steps": 5000}})
        done = cli("cancel", job.id, url=e2e_server.url)
        assert done.returncode == 0, done.stderr
        assert job.id in done.stdout
        assert client.wait(job.id, timeout=60).status == "cancelled"
        again = cli("cancel", job.id, url=e2e_server.url)
        assert again.returncode == 1 and "409" in again.stderr  # final states are final
