"""Load: many small jobs submitted concurrently through the API; none lost, none duplicated.

    .venv/bin/python bench/load_jobs.py                 # 500 jobs, 2 workers, private Redis
    .venv/bin/python bench/load_jobs.py --jobs 2000 --workers 4 --threads 32
    .venv/bin/python bench/load_jobs.py --url http://127.0.0.1:8000 --jobs 500   # a running
                                                        # service (no execution count check)

Without ``--url`` it starts everything itself: a private ``redis-server``, the API (uvicorn
in a thread) and ``--workers`` Celery workers (prefork, concurrency 1, torch threads 1). Every
job is a tiny spec with diagnostics off, so the numbers measure the job machinery (API, Redis,
broker, claim/lease, progress, result), not training.

It prints throughput (submissions/s, completions/s), latencies (submit call; submit to final
state), and verifies: every accepted id is distinct and listed, every job ends ``succeeded``
with ``attempts == 1``, the broker queues are empty, and (when it started the workers) each
job was executed exactly once according to the workers' logs. Exit status 1 if any check
fails.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import redis

ROOT = Path(__file__).resolve().parents[1]
FINAL = {"succeeded", "failed", "cancelled", "timed_out"}

TINY_SPEC: dict[str, Any] = {
    "spec_version": 1,
    "name": "load",
    "model": {"family": "mlp", "depth": 1, "width": 4},
    "data": {"kind": "spirals", "n_train": 32, "n_val": 8},
    "training": {"steps": 3, "batch_size": 8, "device": "cpu"},
    "diagnostics": {"preset": "off"},
}


@dataclass
class LoadReport:
    jobs: int
    submit_s: float
    total_s: float
    statuses: Counter[str]
    attempts: Counter[int]
    submit_latency_ms: list[float]
    end_to_end_s: list[float]
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def lines(self) -> list[str]:
        def pct(values: list[float], q: float) -> float:
            ordered = sorted(values)
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0

        return [
            f"jobs               {self.jobs}",
            f"submitted in       {self.submit_s:.2f} s  ({self.jobs / self.submit_s:.0f} "
            "submissions/s)",
            f"all final after    {self.total_s:.2f} s  ({self.jobs / self.total_s:.1f} jobs/s "
            "end to end)",
            f"submit latency     p50 {statistics.median(self.submit_latency_ms):.1f} ms, "
            f"p99 {pct(self.submit_latency_ms, 0.99):.1f} ms",
            f"submit -> final    p50 {statistics.median(self.end_to_end_s):.2f} s, "
            f"p99 {pct(self.end_to_end_s, 0.99):.2f} s",
            f"statuses           {dict(self.statuses)}",
            f"attempts           {dict(self.attempts)}",
            "checks             " + ("all passed" if self.ok else "; ".join(self.problems)),
        ]


def submit_all(
    client: httpx.Client, n: int, threads: int
) -> tuple[list[str], list[float], dict[str, float]]:
    """Submit ``n`` jobs from ``threads`` threads; (ids, latencies in ms, submit time by id)."""
    ids: list[str] = []
    latencies: list[float] = []
    submitted: dict[str, float] = {}
    lock = threading.Lock()

    def one(i: int) -> None:
        doc = {**TINY_SPEC, "training": {**TINY_SPEC["training"], "seed": i}}
        started = time.perf_counter()
        response = client.post("/v1/experiments", json=doc)
        elapsed = time.perf_counter() - started
        if response.status_code != 202:
            raise RuntimeError(f"submission {i}: {response.status_code} {response.text}")
        job_id = response.json()["id"]
        with lock:
            ids.append(job_id)
            latencies.append(elapsed * 1000)
            submitted[job_id] = time.time()

    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(n)))
    return ids, latencies, submitted


def listed(client: httpx.Client) -> dict[str, dict[str, Any]]:
    """Every job in the listing, by id (all pages)."""
    jobs: dict[str, dict[str, Any]] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor:
            params["cursor"] = cursor
        page = client.get("/v1/experiments", params=params).json()
        for job in page["data"]:
            jobs[job["id"]] = job
        cursor = page["next_cursor"]
        if not cursor:
            return jobs


def wait_all_final(client: httpx.Client, ids: list[str], timeout: float) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        jobs = listed(client)
        if all(jobs.get(i, {}).get("status") in FINAL for i in ids):
            return jobs
        if time.monotonic() > deadline:
            pending = [i for i in ids if jobs.get(i, {}).get("status") not in FINAL]
            raise TimeoutError(f"{len(pending)} jobs not final after {timeout:.0f} s")
        time.sleep(0.25)


def executions(log_text: str) -> Counter[str]:
    """How many attempts each job id started, from worker logs."""
    return Counter(re.findall(r"job ([0-9a-f]{32}): attempt \d+ on", log_text))


def run_load(
    client: httpx.Client,
    n: int,
    threads: int,
    *,
    broker: redis.Redis | None = None,
    worker_logs: list[Path] | None = None,
    timeout: float = 600,
) -> LoadReport:
    """Submit ``n`` jobs, wait for every one, check that none was lost or duplicated."""
    started = time.perf_counter()
    ids, latencies, submitted = submit_all(client, n, threads)
    submit_s = time.perf_counter() - started
    jobs = wait_all_final(client, ids, timeout)
    total_s = time.perf_counter() - started

    problems: list[str] = []
    if len(set(ids)) != n:
        problems.append(f"{n - len(set(ids))} duplicate ids")
    missing = [i for i in ids if i not in jobs]
    if missing:
        problems.append(f"{len(missing)} accepted jobs missing from the listing")
    statuses = Counter(jobs[i]["status"] for i in ids if i in jobs)
    attempts = Counter(int(jobs[i]["attempts"]) for i in ids if i in jobs)
    if statuses != Counter({"succeeded": n}):
        problems.append(f"not all succeeded: {dict(statuses)}")
    if attempts != Counter({1: n}):
        problems.append(f"attempts other than 1: {dict(attempts)}")
    ends = []
    for job_id in ids:
        job = client.get(f"/v1/experiments/{job_id}").json()
        if job.get("result") is None or job["result"]["summary"]["steps"] != 3:
            problems.append(f"job {job_id} has no complete result")
            break
        finished = job["finished_at"]
        ends.append(_epoch(finished) - submitted[job_id])
    if broker is not None:
        left = {q: int(broker.llen(q)) for q in ("cpu", "gpu")}
        if any(left.values()):
            problems.append(f"tasks left in the broker: {left}")
    if worker_logs is not None:
        counts = executions("\n".join(p.read_text(errors="replace") for p in worker_logs))
        twice = [i for i in ids if counts[i] > 1]
        never = [i for i in ids if counts[i] == 0]
        if twice:
            problems.append(f"{len(twice)} jobs executed more than once")
        if never:
            problems.append(f"{len(never)} jobs with no execution in the worker logs")
    return LoadReport(
        jobs=n,
        submit_s=submit_s,
        total_s=total_s,
        statuses=statuses,
        attempts=attempts,
        submit_latency_ms=latencies,
        end_to_end_s=ends,
        problems=problems,
    )


def _epoch(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso).timestamp()


# --- standalone: start Redis, the API and workers ------------------------------------------
# (bench/chaos_jobs.py starts the same parts and kills them.)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.1)


def redis_binary() -> str:
    binary = shutil.which("redis-server")
    if binary is None:
        raise SystemExit("redis-server not found")
    return binary


def start_redis(
    port: int, data: Path, persistence: tuple[str, ...] = ("--appendonly", "no")
) -> subprocess.Popen[bytes]:
    """``redis-server`` on 127.0.0.1:``port``, files in ``data``; answers PING on return."""
    proc = subprocess.Popen(
        [
            redis_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            *persistence,
            "--dir",
            str(data),
            "--logfile",
            str(data / "redis.log"),
        ]
    )
    client = redis.Redis(port=port, socket_connect_timeout=0.2)
    try:
        _wait(lambda: _pings(client), 15, "redis-server")
    except TimeoutError:
        proc.kill()
        raise
    return proc


def start_worker(name: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """A Celery worker (prefork, one training process) in its own process group."""
    with log.open("wb") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "worker.runtime.app",
                "worker",
                "--pool=prefork",
                "--concurrency=1",
                "-Q",
                "cpu,gpu",
                "-n",
                f"{name}@%h",
                "-l",
                "info",
                "--without-gossip",
                "--without-mingle",
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def terminate(procs: Sequence[subprocess.Popen[bytes]], timeout: float = 30) -> None:
    """SIGTERM every process still running, in the order given, then wait for each; SIGKILL
    one that outlives ``timeout``."""
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()


def start_api(url: str) -> tuple[Any, int]:
    """The API (uvicorn in a daemon thread) on a free port; (server, port) once it serves."""
    os.environ["REDIS_URL"] = url
    import uvicorn

    from service.main import create_app
    from service.settings import ServiceSettings

    api_port = _free_port()
    app = create_app(ServiceSettings(redis_url=url))
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=api_port, log_level="warning", lifespan="on")
    )
    threading.Thread(target=server.run, daemon=True).start()
    _wait(lambda: server.started, 30, "the API")
    return server, api_port


def workers_ready(client: httpx.Client) -> int:
    """How many workers ``/readyz`` counts (0 while it answers otherwise)."""
    try:
        workers = client.get("/readyz").json().get("workers")
    except (httpx.TransportError, ValueError):
        return 0
    return workers if isinstance(workers, int) else len(workers or [])


def main() -> int:
    """Long: the bench as one script read top to bottom (start the cluster, submit from threads,
    wait, check and print); its steps are used nowhere else, and split up they would only pass
    the same dozen locals around."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=500)
    parser.add_argument("--threads", type=int, default=16, help="concurrent submitters")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--url", default=None, help="use this running service instead")
    parser.add_argument("--timeout", type=float, default=900)
    args = parser.parse_args()

    if args.url:
        with httpx.Client(base_url=args.url, timeout=60) as client:
            report = run_load(client, args.jobs, args.threads, timeout=args.timeout)
        print("\n".join(report.lines()))
        return 0 if report.ok else 1

    redis_binary()
    tmp = Path(tempfile.mkdtemp(prefix="trainability-load-"))
    port = _free_port()
    procs: list[subprocess.Popen[bytes]] = []
    server = None
    logging.basicConfig(level=logging.WARNING)  # the API's access lines would drown the report
    try:
        procs.append(start_redis(port, tmp))
        url = f"redis://127.0.0.1:{port}/0"
        broker = redis.Redis.from_url(url, decode_responses=True)
        env = {
            **os.environ,
            "REDIS_URL": url,
            "PYTHONPATH": str(ROOT),
            "TRAINABILITY_TORCH_THREADS": "1",
            "TRAINABILITY_PROGRESS_INTERVAL_S": "0.5",
        }
        logs = []
        for i in range(args.workers):
            log = tmp / f"worker{i}.log"
            logs.append(log)
            procs.append(start_worker(f"load{i}", env, log))
        server, api_port = start_api(url)
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=60) as client:
            _wait(lambda: workers_ready(client) >= args.workers, 90, "the workers")
            print(
                f"{args.workers} workers, {args.threads} submitting threads, {args.jobs} jobs",
                flush=True,
            )
            report = run_load(
                client,
                args.jobs,
                args.threads,
                broker=broker,
                worker_logs=logs,
                timeout=args.timeout,
            )
        print("\n".join(report.lines()))
        print(
            json.dumps(
                {
                    "jobs": report.jobs,
                    "submit_s": round(report.submit_s, 3),
                    "total_s": round(report.total_s, 3),
                    "ok": report.ok,
                }
            )
        )
        return 0 if report.ok else 1
    finally:
        if server is not None:
            server.should_exit = True
        terminate(procs[::-1])
        shutil.rmtree(tmp, ignore_errors=True)


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.exceptions.RedisError:
        return False


if __name__ == "__main__":
    sys.exit(main())
