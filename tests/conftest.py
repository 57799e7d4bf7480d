"""Real services for tests: a redis-server, a Celery worker process, the API over real HTTP.

One redis-server serves the whole session; test groups keep apart by database number:
``JOBSTORE_DB`` for job store tests, ``API_DB`` for API tests (no worker: whatever the API
enqueues stays in the broker list, so tests can count it), ``E2E_DB`` for the worker flows.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
import uvicorn

from service.main import create_app
from service.settings import ServiceSettings
from worker.jobs.registry import registry_from_settings

ROOT = Path(__file__).resolve().parents[1]
JOBSTORE_DB, API_DB, E2E_DB, CLI_DB = 1, 2, 3, 4


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate, timeout: float, what: str, interval: float = 0.1, on_fail=None) -> None:
    """Retry ``predicate`` until it is true; fail the test with ``what`` otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(interval)
    extra = f"\n{on_fail()}" if on_fail else ""
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}{extra}")


def tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"({path} does not exist)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass
class RedisServer:
    port: int
    proc: subprocess.Popen[bytes]
    log: Path

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(port=self.port, db=db, decode_responses=True)

    def answers(self) -> bool:
        try:
            return bool(redis.Redis(port=self.port, socket_connect_timeout=0.2).ping())
        except redis.exceptions.RedisError:
            return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A private redis-server on a free port, no persistence, stopped at the end."""
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not installed (apt-get install redis-server); "
                    "the tests run against a real Redis")
    data = tmp_path_factory.mktemp("redis")
    port = free_port()
    log = data / "redis.log"
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(data), "--daemonize", "no", "--logfile", str(log)],
    )
    server = RedisServer(port=port, proc=proc, log=log)
    try:
        wait_for(server.answers, 15, f"redis-server on port {port} to answer PING",
                 on_fail=lambda: tail(log))
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def make_settings(server: RedisServer | None, db: int, **overrides) -> ServiceSettings:
    url = server.url(db) if server is not None else f"redis://127.0.0.1:{free_port()}/0"
    return ServiceSettings(redis_url=url, **overrides)


class LiveServer:
    """The API app on a real uvicorn server in a thread (real HTTP on a free port)."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.app = create_app(settings)
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="on", ws="none")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        wait_for(lambda: self._server.started, 15, f"uvicorn on port {self.port}")
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30)


@pytest.fixture(scope="session")
def api_server(redis_server: RedisServer) -> Iterator[LiveServer]:
    """The API on ``API_DB``; no worker consumes its queues."""
    with LiveServer(make_settings(redis_server, API_DB)) as server:
        yield server


@pytest.fixture
def api(api_server: LiveServer, redis_server: RedisServer) -> Iterator[httpx.Client]:
    """A client of the API, on an empty ``API_DB``."""
    redis_server.client(API_DB).flushdb()
    with api_server.client() as client:
        yield client


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log: Path


@pytest.fixture(scope="session")
def celery_worker(redis_server: RedisServer,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """A real Celery worker (prefork, two training processes: the machine's two cores) on
    ``E2E_DB``, consuming cpu and gpu."""
    redis_server.client(E2E_DB).flushdb()
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    env = {**os.environ, "REDIS_URL": redis_server.url(E2E_DB), "PYTHONPATH": str(ROOT),
           "TRAINABILITY_LIVENESS_INTERVAL_S": "1",
           "TRAINABILITY_PROGRESS_INTERVAL_S": "0.2", "TRAINABILITY_TORCH_THREADS": "1"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "worker.runtime.app", "worker",
             "--pool=prefork", "--concurrency=2", "-Q", "cpu,gpu", "-n", "test-worker@%h",
             "-l", "info", "--without-gossip", "--without-mingle"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
        )
    registry = registry_from_settings(make_settings(redis_server, E2E_DB))
    try:
        wait_for(lambda: proc.poll() is None and bool(registry.live_workers()), 60,
                 "the Celery worker's heartbeat", interval=0.2,
                 on_fail=lambda: tail(log))
        yield WorkerProcess(proc=proc, log=log)
    finally:
        proc.send_signal(signal.SIGTERM)  # warm shutdown
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def e2e_server(redis_server: RedisServer, celery_worker: WorkerProcess) -> Iterator[LiveServer]:
    """The API on ``E2E_DB``, with the worker running."""
    with LiveServer(make_settings(redis_server, E2E_DB)) as server:
        yield server


@pytest.fixture
def api_redis(redis_server: RedisServer, api: httpx.Client) -> redis.Redis:
    """Direct access to the API's Redis database (flushed by ``api``)."""
    return redis_server.client(API_DB)


@pytest.fixture(scope="session")
def api_without_redis() -> Iterator[LiveServer]:
    """The API pointed at a Redis port where nothing listens."""
    with LiveServer(make_settings(None, 0, retry_after_s=7)) as server:
        yield server


@pytest.fixture
def live_api(redis_server: RedisServer) -> Iterator[type[LiveServer]]:
    """``LiveServer`` and settings on ``API_DB``, for tests that need their own app instance:
    ``with live_api(setup=...) as server``."""
    class OwnServer(LiveServer):
        def __init__(self, setup=None) -> None:
            super().__init__(make_settings(redis_server, API_DB))
            if setup is not None:
                setup(self.app)

    yield OwnServer


@pytest.fixture(scope="session")
def server_with(redis_server: RedisServer):
    """``with server_with(max_parameters=10) as server``: the API on ``API_DB`` with settings
    overrides (e.g. small budgets), on its own port."""
    def make(**overrides) -> LiveServer:
        return LiveServer(make_settings(redis_server, API_DB, **overrides))

    return make
