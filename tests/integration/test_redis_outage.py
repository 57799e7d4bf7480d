"""Redis stops under a running API and worker: every route answers 503 with Retry-After (or, for
probes that do not need it, what they always answer), never a 500; when Redis is back the
service works again by itself, and every job accepted before the outage ends ``succeeded``."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis

from service.settings import ServiceSettings
from tests.conftest import LiveServer, free_port, tail, wait_for
from tests.integration.conftest import WorkerFarm, wait_final

pytestmark = pytest.mark.integration
PROBLEM = "application/problem+json"


def spec(steps: int = 600) -> dict[str, Any]:
    return {
        "spec_version": 1,
        "model": {"family": "mlp", "depth": 2, "width": 16},
        "data": {"kind": "spirals", "n_train": 256, "n_val": 32},
        "training": {"steps": steps, "batch_size": 32, "device": "cpu"},
        "diagnostics": {"preset": "off"},
    }


@dataclass
class PrivateRedis:
    """A redis-server with AOF (fsync always) that the test can stop and start again."""

    port: int
    data: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.2).ping())
        except redis.exceptions.RedisError:
            return False

    def start(self) -> None:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed"
        self.proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.data),
             "--appendonly", "yes", "--appendfsync", "always", "--save", "",
             "--logfile", str(self.data / "redis.log")])
        wait_for(self.answers, 15, "the private redis-server",
                 on_fail=lambda: tail(self.data / "redis.log"))

    def stop(self) -> None:
        assert self.proc is not None
        self.proc.terminate()  # SHUTDOWN: the AOF is on disk
        self.proc.wait(timeout=15)


@pytest.fixture
def private_redis(tmp_path) -> Iterator[PrivateRedis]:
    server = PrivateRedis(port=free_port(), data=tmp_path)
    server.start()
    yield server
    if server.proc is not None and server.proc.poll() is None:
        server.stop()


ROUTES = [
    ("POST", "/v1/experiments", spec()),
    ("GET", "/v1/experiments", None),
    ("GET", "/v1/experiments/{id}", None),
    ("POST", "/v1/experiments/{id}/cancel", None),
    ("DELETE", "/v1/experiments/{id}", None),
    ("GET", "/v1/experiments/{id}/events", None),
    ("GET", "/v1/experiments/{id}/report", None),
    ("GET", "/v1/sweeps", None),
    ("GET", "/readyz", None),
]


def test_redis_down_means_503_then_everything_recovers(private_redis, tmp_path):
    farm = WorkerFarm(private_redis.url, 0, tmp_path)
    farm.start("outage")
    settings = ServiceSettings(redis_url=private_redis.url, retry_after_s=3)
    try:
        with LiveServer(settings) as api, api.client() as client:
            first = client.post("/v1/experiments", json=spec()).json()["id"]
            assert wait_final(client, first, timeout=60)["status"] == "succeeded"
            before = [client.post("/v1/experiments", json=spec()).json()["id"] for _ in range(4)]

            private_redis.stop()
            answers = {}
            for method, path, body in ROUTES:
                response = client.request(method, path.format(id=before[0]), json=body)
                answers[f"{method} {path}"] = response.status_code
                assert response.status_code == 503, (method, path, response.text)
                assert response.headers["content-type"] == PROBLEM
                assert response.headers["retry-after"] == "3"
            assert client.get("/healthz").status_code == 200
            metrics = client.get("/metrics")
            assert metrics.status_code == 200 and "trainability_store_up 0.0" in metrics.text
            time.sleep(2)  # an outage longer than a lease: the reaper must not lose anything

            private_redis.start()
            deadline = time.monotonic() + 30
            while (response := client.post("/v1/experiments", json=spec())).status_code != 202:
                assert response.status_code == 503, response.text  # recovering, never 500
                assert time.monotonic() < deadline, "the API did not recover"
                time.sleep(0.2)
            after = response.json()["id"]

            for job_id in [first, *before, after]:
                job = wait_final(client, job_id, timeout=90)
                assert job["status"] == "succeeded", (job_id, job["error"])
            listed = {j["id"] for j in client.get("/v1/experiments",
                                                  params={"limit": 100}).json()["data"]}
            assert {first, *before, after} <= listed
            assert client.get("/readyz").status_code == 200
    finally:
        farm.stop_all()
