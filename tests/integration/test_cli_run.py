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
            [sys.executable, "-m", "service.cli", "run", "--port", str(port)],
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
    local = tmp_path / ".local" / "redis"
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
