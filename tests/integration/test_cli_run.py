"""``trainability run``: the local all-in-one starts Redis (when needed), the API and a worker,
serves a job end to end, and stops everything it started on Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis

ROOT = Path(__file__).resolve().parents[2]
CLI_DB = 4
SPEC = {
    "spec_version": 1,
    "model": {"family": "mlp", "depth": 2, "width": 8},
    "data": {"kind": "spirals", "n_train": 64, "n_val": 16},
    "training": {"steps": 10, "batch_size": 16, "device": "cpu"},
    "diagnostics": {"preset": "basic"},
}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.25)
    pytest.fail(f"timed out waiting for {what}; output:\n{log.read_text(errors='replace')[-4000:]}")


def _get(url: str) -> httpx.Response | None:
    try:
        return httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None


@pytest.mark.integration
@pytest.mark.parametrize("redis_from", ["env", "local"])
def test_run_serves_a_job_and_stops_everything_on_ctrl_c(redis_server, tmp_path, redis_from):
    port = _free_port()
    if redis_from == "env":
        redis_server.client(CLI_DB).flushdb()
        redis_url = redis_server.url(CLI_DB)
    else:
        redis_url = f"redis://127.0.0.1:{_free_port()}/0"  # nothing listens: start one
    env = {**os.environ, "PYTHONPATH": str(ROOT), "REDIS_URL": redis_url}
    log = tmp_path / "run.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "service.cli", "run", "--port", str(port), "--workers", "1"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait(
            lambda: (r := _get(f"{base}/readyz")) is not None and r.status_code == 200,
            90,
            "/readyz",
            log,
        )
        job_id = httpx.post(f"{base}/v1/experiments", json=SPEC).json()["id"]
        _wait(
            lambda: (
                httpx.get(f"{base}/v1/experiments/{job_id}").json()["status"]
                in ("succeeded", "failed", "timed_out", "cancelled")
            ),
            120,
            "the job to end",
            log,
        )
        job = httpx.get(f"{base}/v1/experiments/{job_id}").json()
        assert job["status"] == "succeeded", job["error"]
    finally:
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=90)
    output = log.read_text(errors="replace")
    assert rc == 0, output
    assert f"docs: {base}/docs" in output
    assert _get(f"{base}/healthz") is None  # the API is gone
    local = tmp_path / ".local" / f"redis-{port}"
    if redis_from == "env":
        assert not local.exists()
        assert redis_server.answers()  # a Redis we did not start is left alone
    else:
        assert (local / "redis.log").exists()
        url = next(line.split()[2] for line in output.splitlines() if "Redis   redis://" in line)
        with pytest.raises(redis.exceptions.ConnectionError):
            redis.Redis.from_url(url, socket_connect_timeout=0.5).ping()


def test_run_refuses_a_port_that_is_taken():
    """Another process on the API port would answer /healthz; `run` must not report success."""
    import socket

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "service.cli", "run", "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr + done.stdout


def _start_run(tmp_path: Path, port: int, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    """``trainability run`` configured by the environment only (no --port), Redis local."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TRAINABILITY_API_PORT": str(port),
           "WORKERS": "1", "REDIS_URL": f"redis://127.0.0.1:{_free_port()}/0"}
    log = tmp_path / f"{name}.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "service.cli", "run"], cwd=tmp_path,
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    return proc, log


@pytest.mark.integration
def test_run_honours_the_port_setting_and_instances_side_by_side_keep_their_jobs(tmp_path):
    """TRAINABILITY_API_PORT moves the API; two instances from one checkout do not share a
    Redis directory, so neither sees (or runs) the other's jobs; a third on a directory in use
    is refused with a clear message."""
    ports = [_free_port(), _free_port()]
    runs = [_start_run(tmp_path, port, f"run{i}") for i, port in enumerate(ports)]
    try:
        for (_proc, log), port in zip(runs, ports, strict=True):
            _wait(lambda port=port: (r := _get(f"http://127.0.0.1:{port}/healthz")) is not None
                  and r.status_code == 200, 90, f"/healthz on {port}", log)
        job = httpx.post(f"http://127.0.0.1:{ports[0]}/v1/experiments", json=SPEC).json()["id"]
        other = httpx.get(f"http://127.0.0.1:{ports[1]}/v1/experiments").json()
        assert other["data"] == []
        assert httpx.get(f"http://127.0.0.1:{ports[1]}/v1/experiments/{job}").status_code == 404
        mine = httpx.get(f"http://127.0.0.1:{ports[0]}/v1/experiments").json()["data"]
        assert [j["id"] for j in mine] == [job]
        for port in ports:
            assert (tmp_path / ".local" / f"redis-{port}" / "run.lock").exists()
        # the first instance's directory is locked: a second run on its port is refused
        # before it starts anything (the port check comes first, so free the name only)
        from service.cli import lock_directory

        with pytest.raises(SystemExit, match="in use by another `trainability run`"):
            lock_directory(tmp_path / ".local" / f"redis-{ports[0]}")
    finally:
        for proc, _log in runs:
            proc.send_signal(signal.SIGINT)
        for proc, log in runs:
            assert proc.wait(timeout=90) == 0, log.read_text(errors="replace")[-3000:]
