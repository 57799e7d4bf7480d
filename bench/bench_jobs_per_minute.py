"""Jobs per minute through the whole service: API, Redis, workers, real training jobs.

It starts a private ``redis-server``, our API (``uvicorn service.main:app``) and the workers
the way an operator does (``python -m service.cli worker``, i.e. ``trainability worker``): on
``cuda`` one worker per GPU (``--gpu N``: it sees only its GPU, consumes the ``gpu`` queue), on
``cpu`` ``--workers`` workers of one training process and one torch thread each. Once every
worker is ready and warmed up, it submits ``--jobs`` copies of one design (different seeds) at
once and waits for all of them. Reported: jobs per minute (jobs / time from the first
submission to the last final state), each job's queued and running time (from its record),
and whether every job succeeded. The default design is the overhead bench's MLP (depth 8,
width 256, batch 128, 1000 steps, default diagnostics).

Usage (GPU host, one worker per GPU; about a minute on one GPU):
  .venv/bin/python bench/bench_jobs_per_minute.py --device cuda --gpus 1 --jobs 16 \
      --json bench/out/jobs-per-minute-gpu.json
CPU (two workers, a 2-core machine; about 2 minutes):
  .venv/bin/python bench/bench_jobs_per_minute.py --device cpu --workers 2 --jobs 8
Smoke run:
  .venv/bin/python bench/bench_jobs_per_minute.py --device cpu --workers 1 --jobs 2 --steps 20
Options: [--spec FILE.json] (another design; its device is set to --device) [--steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_first_job import (  # noqa: E402
    answers,
    free_port,
    start,
    start_private_redis,
    stop,
)
from bench.raw_numbers import write_report  # noqa: E402
from service.settings import ServiceSettings  # noqa: E402
from worker.jobs.registry import RedisWorkerRegistry, registry_from_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FINAL = {"succeeded", "failed", "cancelled", "timed_out"}
DEFAULT_SPEC: dict[str, Any] = {
    "spec_version": 1,
    "name": "jobs-per-minute",
    "model": {"family": "mlp", "depth": 8, "width": 256, "activation": "relu"},
    "init": {"scheme": "kaiming_normal"},
    "data": {"kind": "teacher", "input_dim": 32, "output_dim": 10, "n_train": 8192},
    "optimizer": {"lr": 0.01, "momentum": 0.9},
    "training": {"steps": 1000, "batch_size": 128},
}


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             procs: list[subprocess.Popen[bytes]] | None = None,
             log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        dead = [p for p in procs or [] if p.poll() is not None]
        if dead or time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log else ""
            raise SystemExit(f"bench_jobs_per_minute: {what} did not happen\n{tail}")
        time.sleep(0.1)


def live(registry: RedisWorkerRegistry, names: list[str]) -> bool:
    up = {w.hostname.split("@")[0] for w in registry.live_workers()}
    return set(names) <= up


def warmed(logs: list[Path]) -> bool:
    return all("warmed up in" in p.read_text(errors="replace") for p in logs)


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1],
            "n": len(ordered)}


def main() -> int:
    """Long: the bench as one script read top to bottom (start Redis, the API and the workers,
    submit, wait, the table); its steps are used nowhere else, and split up they would only pass
    the same dozen locals around."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--gpus", type=int, default=1, help="cuda: workers, one per GPU 0..N-1")
    parser.add_argument("--workers", type=int, default=1, help="cpu: workers")
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--steps", type=int, default=None, help="override the design's steps")
    parser.add_argument("--spec", type=Path, default=None, help="a design JSON file")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", type=Path, default=None, help="write every raw number here")
    args = parser.parse_args()
    spec = json.loads(args.spec.read_text()) if args.spec else json.loads(
        json.dumps(DEFAULT_SPEC))
    spec["training"]["device"] = args.device
    if args.steps is not None:
        spec["training"]["steps"] = args.steps
        spec["training"].pop("epochs", None)
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("bench_jobs_per_minute: redis-server not found "
                         "(apt-get install redis-server)")

    n_workers = args.gpus if args.device == "cuda" else args.workers
    tmp = Path(tempfile.mkdtemp(prefix="trainability-bench-jpm-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        redis_proc, rport = start_private_redis(redis_server, tmp)
        procs.append(redis_proc)
        api_port = free_port()
        url = f"redis://127.0.0.1:{rport}/0"
        env = {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(ROOT),
               "TRAINABILITY_TORCH_THREADS": "1", "TRAINABILITY_LIVENESS_INTERVAL_S": "1"}
        procs.append(start([sys.executable, "-m", "uvicorn", "service.main:app", "--host",
                            "127.0.0.1", "--port", str(api_port), "--log-level", "warning"],
                           tmp / "api.log", env))
        base = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: answers(f"{base}/healthz"), 60, "the API answering", procs,
                 tmp / "api.log")
        names, logs, workers = [], [], []
        for i in range(n_workers):
            name = f"jpm{i}"
            argv = [sys.executable, "-m", "service.cli", "worker", "--concurrency", "1",
                    "--hostname", f"{name}@%h"]
            argv += ["--gpu", str(i)] if args.device == "cuda" else ["--queues", "cpu"]
            log = tmp / f"{name}.log"
            workers.append(start(argv, log, env))
            names.append(name)
            logs.append(log)
        procs += workers
        registry = registry_from_settings(ServiceSettings(redis_url=url))
        began = time.monotonic()
        wait_for(lambda: live(registry, names) and warmed(logs), 300,
                 "every worker ready and warmed up", workers, logs[0])
        print(f"{n_workers} worker(s) on {args.device} ready and warm after "
              f"{time.monotonic() - began:.1f} s; submitting {args.jobs} jobs", flush=True)

        with httpx.Client(base_url=base, timeout=60) as client:
            t0 = time.monotonic()
            ids = []
            for i in range(args.jobs):
                doc = {**spec, "training": {**spec["training"], "seed": i}}
                response = client.post("/v1/experiments", json=doc)
                if response.status_code != 202:
                    raise SystemExit(f"bench_jobs_per_minute: submission refused: "
                                     f"{response.status_code} {response.text}")
                ids.append(response.json()["id"])
            pending, jobs = set(ids), {}
            while pending:
                if time.monotonic() - t0 > args.timeout:
                    raise SystemExit(f"bench_jobs_per_minute: {len(pending)} jobs not final "
                                     f"after {args.timeout:.0f} s")
                for job_id in list(pending):
                    job = client.get(f"/v1/experiments/{job_id}",
                                     params={"fields": "summary"}).json()
                    if job["status"] in FINAL:
                        jobs[job_id] = job
                        pending.discard(job_id)
                time.sleep(0.1)
            elapsed = time.monotonic() - t0
    finally:
        for proc in reversed(procs):
            stop(proc)

    statuses = Counter(j["status"] for j in jobs.values())
    queued = [_epoch(j["started_at"]) - _epoch(j["created_at"]) for j in jobs.values()
              if j.get("started_at")]
    running = [_epoch(j["finished_at"]) - _epoch(j["started_at"]) for j in jobs.values()
               if j.get("started_at") and j.get("finished_at")]
    per_minute = len(ids) / elapsed * 60
    model = spec["model"]
    print(f"\ndesign: {model.get('family', 'mlp')} depth {model.get('depth')} width "
          f"{model.get('width')}, {spec['training'].get('steps')} steps, batch "
          f"{spec['training'].get('batch_size')}, diagnostics "
          f"{(spec.get('diagnostics') or {}).get('preset', 'standard')}, {args.device}")
    print(f"{'workers':>7} {'jobs':>5} {'wall s':>8} {'jobs/min':>9} {'running s (median)':>19} "
          f"{'queued s (max)':>15}  statuses")
    print(f"{n_workers:>7} {len(ids):>5} {elapsed:8.1f} {per_minute:9.1f} "
          f"{spread(running)['median'] if running else float('nan'):19.2f} "
          f"{max(queued) if queued else float('nan'):15.2f}  {dict(statuses)}")
    ok = statuses == Counter({"succeeded": len(ids)})
    if not ok:
        print("NOT every job succeeded: "
              + "; ".join(f"{i}: {j['status']} {j.get('error')}" for i, j in jobs.items()
                          if j["status"] != "succeeded"))
    if args.json is not None:
        report = {"bench": "jobs_per_minute",
                  "config": {k: str(v) if isinstance(v, Path) else v
                             for k, v in vars(args).items()},
                  "spec": spec, "workers": n_workers, "jobs": len(ids), "wall_s": elapsed,
                  "jobs_per_minute": per_minute, "statuses": dict(statuses),
                  "running_s": spread(running) if running else None,
                  "queued_s": spread(queued) if queued else None,
                  "per_job": [{"id": i, "status": j["status"], "created_at": j["created_at"],
                               "started_at": j.get("started_at"),
                               "finished_at": j.get("finished_at")}
                              for i, j in jobs.items()]}
        write_report(args.json, report)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
