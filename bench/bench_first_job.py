"""A fresh worker's first job against its second: does the first pay for imports?

It starts a private ``redis-server`` and our API (``uvicorn service.main:app``), then R times:
a fresh worker (``python -m service.cli worker``, i.e. ``trainability worker``: Celery prefork,
one training process), waits until it is ready (its liveness beat in the registry, what
``/readyz`` counts), submits a one-step depth-12 MLP job (default diagnostics) as its first
job and waits for the result, then the same again as its second job, and stops the worker.
Per job it records the time from submission to the final state seen by the client (polled
every 20 ms) and, from the job record, the time queued (created -> started) and running
(started -> finished). Also: worker start -> ready, and worker start -> the training process's
"warmed up" log line (``TRAINABILITY_WORKER_WARMUP``, worker/runtime/child.py). Reported:
medians over the R workers and the ratio first/second per worker. The target checked: the
first job within 1.5x the time of the second (submission -> final).

Usage (the full measurement: about 1.5 minutes on a 2-core machine):
  .venv/bin/python bench/bench_first_job.py --repeats 3 --json bench/out/first-job.json
Compare with the warm-up switched off (interleaved):
  .venv/bin/python bench/bench_first_job.py --repeats 3 --warmup on,off
On a GPU host (the worker serves GPU 0, the jobs ask for cuda):
  .venv/bin/python bench/bench_first_job.py --device cuda --repeats 3
Smoke run:
  .venv/bin/python bench/bench_first_job.py --repeats 1
Options: [--depth 12] [--width 128] [--steps 1] [--preset standard] [--torch-threads 1]
  [--target 1.5]
"""

from __future__ import annotations

import argparse
import os
import random
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
from collections.abc import Callable
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import redis

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.raw_numbers import write_report  # noqa: E402
from service.settings import ServiceSettings  # noqa: E402
from worker.jobs.registry import RedisWorkerRegistry, registry_from_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
FINAL = {"succeeded", "failed", "cancelled", "timed_out"}


def job_spec(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    return {
        "spec_version": 1,
        "name": f"first-job depth {args.depth}",
        "model": {"family": "mlp", "depth": args.depth, "width": args.width,
                  "activation": "relu"},
        "init": {"scheme": "kaiming_normal"},
        "data": {"kind": "teacher", "input_dim": 32, "output_dim": 10, "n_train": 2048},
        "optimizer": {"lr": 0.01, "momentum": 0.9},
        "training": {"steps": args.steps, "batch_size": 64, "device": args.device,
                     "seed": seed},
        "diagnostics": {"preset": args.preset},
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             proc: subprocess.Popen[bytes] | None = None, log: Path | None = None,
             interval: float = 0.05) -> float:
    """Poll until true; the ``time.monotonic()`` it became true. Exits naming ``what``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log else ""
            raise SystemExit(f"bench_first_job: {what} did not happen\n{tail}")
        time.sleep(interval)
    return time.monotonic()


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def redis_argv(redis_server: str, port: int, data: Path) -> list[str]:
    """A private redis-server on 127.0.0.1:``port``, without persistence, its files in
    ``data``."""
    return [redis_server, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(data)]


def start_private_redis(redis_server: str, data: Path) -> tuple[subprocess.Popen[bytes], int]:
    """``redis_argv`` on a free port, in its own process group; answering PING on return."""
    port = free_port()
    proc = start(redis_argv(redis_server, port, data), data / "redis.log", dict(os.environ))
    wait_for(lambda: pings(port), 15, "redis-server answering")
    return proc, port


def pings(port: int) -> bool:
    try:
        return bool(redis.Redis(port=port, socket_connect_timeout=0.2).ping())
    except redis.exceptions.RedisError:
        return False


def start(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def stop(proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """SIGTERM to the process group (Celery's warm shutdown), SIGKILL if it hangs."""
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


class LogWatcher:
    """Notes when a line containing ``needle`` first shows up in ``path`` (polled, 20 ms)."""

    def __init__(self, path: Path, needle: str) -> None:
        self.path, self.needle = path, needle
        self.seen_at: float | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._done.is_set():
            if self.path.exists() and self.needle in self.path.read_text(errors="replace"):
                self.seen_at = time.monotonic()
                return
            self._done.wait(0.02)

    def seen(self) -> bool:
        return self.seen_at is not None

    def close(self) -> None:
        self._done.set()
        self._thread.join(timeout=5)


def is_live(registry: RedisWorkerRegistry, name: str) -> bool:
    """Whether worker ``name`` (Celery node ``name@host``) has a liveness beat."""
    return any(w.hostname.startswith(f"{name}@") for w in registry.live_workers())


def _epoch(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp()


def run_job(client: httpx.Client, spec: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Submit, poll until final; the client's and the record's timings."""
    began = time.perf_counter()
    response = client.post("/v1/experiments", json=spec)
    if response.status_code != 202:
        raise SystemExit(f"bench_first_job: submission refused: {response.status_code} "
                         f"{response.text}")
    job_id = response.json()["id"]
    deadline = time.monotonic() + timeout
    while True:
        job = client.get(f"/v1/experiments/{job_id}").json()
        if job["status"] in FINAL:
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"bench_first_job: job {job_id} not final after {timeout:.0f} s")
        time.sleep(0.02)
    end_to_end = time.perf_counter() - began
    summary = (job.get("result") or {}).get("summary") or {}
    return {
        "id": job_id, "status": job["status"], "error": job.get("error"),
        "submit_to_final_s": end_to_end,
        "queued_s": _epoch(job["started_at"]) - _epoch(job["created_at"])
        if job.get("started_at") else None,
        "running_s": _epoch(job["finished_at"]) - _epoch(job["started_at"])
        if job.get("started_at") and job.get("finished_at") else None,
        "result_wall_time_s": summary.get("wall_time_s"),
        "result_train_time_s": summary.get("train_time_s"),
    }


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1],
            "n": len(ordered)}


def cell(s: dict[str, float]) -> str:
    return f"{s['median']:.2f} [{s['min']:.2f}-{s['max']:.2f}]"


def main() -> int:
    """Long: the bench as one script read top to bottom (per setting: fresh workers, their first
    and second jobs, the table and verdicts); its steps are used nowhere else, and split up they
    would only pass the same dozen locals around."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="fresh workers per setting")
    parser.add_argument("--warmup", default="on", help="worker warm-up: on, off or on,off")
    parser.add_argument("--depth", type=int, default=12)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--preset", default="standard")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--torch-threads", type=int, default=1,
                        help="TRAINABILITY_TORCH_THREADS of the worker (0: torch's default)")
    parser.add_argument("--submit-after", default="ready", choices=["ready", "warm"],
                        help="submit the first job once the worker is ready (its liveness "
                        "beat: what /readyz counts), or once its warm-up has ended")
    parser.add_argument("--timeout", type=float, default=300, help="seconds per job at most")
    parser.add_argument("--target", type=float, default=1.5)
    parser.add_argument("--json", type=Path, default=None, help="write every raw number here")
    args = parser.parse_args()
    settings_list = args.warmup.split(",")
    if not set(settings_list) <= {"on", "off"}:
        parser.error("--warmup takes on, off or on,off")
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("bench_first_job: redis-server not found (apt-get install redis-server)")

    tmp = Path(tempfile.mkdtemp(prefix="trainability-bench-first-job-"))
    procs: list[subprocess.Popen[bytes]] = []
    runs: list[dict[str, Any]] = []
    try:
        redis_proc, rport = start_private_redis(redis_server, tmp)
        procs.append(redis_proc)
        api_port = free_port()
        url = f"redis://127.0.0.1:{rport}/0"
        env = {**os.environ, "REDIS_URL": url, "PYTHONPATH": str(ROOT)}
        api = start([sys.executable, "-m", "uvicorn", "service.main:app", "--host", "127.0.0.1",
                     "--port", str(api_port), "--log-level", "warning"], tmp / "api.log", env)
        procs.append(api)
        base = f"http://127.0.0.1:{api_port}"
        wait_for(lambda: answers(f"{base}/healthz"), 60, "the API answering", api,
                 tmp / "api.log")
        registry = registry_from_settings(ServiceSettings(redis_url=url))
        plan = [s for _ in range(args.repeats) for s in settings_list]
        random.Random(0).shuffle(plan)  # interleaved when both settings run
        with httpx.Client(base_url=base, timeout=60) as client:
            for i, warm in enumerate(plan):
                name = f"firstjob{i}"
                log = tmp / f"{name}.log"
                worker_env = {**env, "TRAINABILITY_WORKER_WARMUP": "true" if warm == "on"
                              else "false", "TRAINABILITY_LIVENESS_INTERVAL_S": "1"}
                if args.torch_threads:
                    worker_env["TRAINABILITY_TORCH_THREADS"] = str(args.torch_threads)
                argv = [sys.executable, "-m", "service.cli", "worker", "--concurrency", "1",
                        "--hostname", f"{name}@%h"]
                argv += ["--gpu", "0"] if args.device == "cuda" else ["--queues", "cpu"]
                t0 = time.monotonic()
                worker = start(argv, log, worker_env)
                watcher = LogWatcher(log, "warmed up in")
                try:
                    ready = wait_for(partial(is_live, registry, name), 180,
                                     f"worker {name} ready", worker, log) - t0
                    # whether the training process had finished warming up when ready
                    warm_at_ready = watcher.seen()
                    if args.submit_after == "warm" and warm == "on":
                        wait_for(watcher.seen, 180,
                                 f"worker {name}'s warm-up line", worker, log)
                    first = run_job(client, job_spec(args, 2 * i), args.timeout)
                    second = run_job(client, job_spec(args, 2 * i + 1), args.timeout)
                finally:
                    stop(worker)
                    watcher.close()
                warm_line = [ln for ln in log.read_text(errors="replace").splitlines()
                             if "warmed up in" in ln]
                run = {"worker": name, "warmup": warm, "start_to_ready_s": ready,
                       "warmed_up_when_ready": warm_at_ready,
                       "start_to_warm_s": None if watcher.seen_at is None
                       else watcher.seen_at - t0,
                       "warm_up_log": warm_line[0] if warm_line else None,
                       "warm_up_s": float(m.group(1)) if warm_line and (m := re.search(
                           r"warmed up in ([0-9.]+) s", warm_line[0])) else None,
                       "first": first, "second": second,
                       "ratio": first["submit_to_final_s"] / second["submit_to_final_s"]}
                runs.append(run)
                print(f"  worker {i + 1}/{len(plan)} warm-up {warm:<3} ready after "
                      f"{ready:5.2f} s; first job {first['submit_to_final_s']:6.2f} s "
                      f"({first['status']}), second {second['submit_to_final_s']:6.2f} s "
                      f"({second['status']}), ratio {run['ratio']:.2f}", flush=True)
    finally:
        for proc in reversed(procs):
            stop(proc)

    print(f"\nfresh workers: {args.repeats} per setting; job: MLP depth {args.depth} width "
          f"{args.width}, {args.steps} step(s), preset {args.preset}, {args.device}; first job "
          f"submitted once the worker is {args.submit_after}; seconds, medians [min-max]")
    print(f"{'warm-up':<8} {'start->ready':<18} {'start->warm':<18} {'first job':<18} "
          f"{'second job':<18} {'first/second':<20} first queued+running / second running")
    rows = {}
    for warm in settings_list:
        mine = [r for r in runs if r["warmup"] == warm]
        warm_times = [r["start_to_warm_s"] for r in mine if r["start_to_warm_s"] is not None]
        row = {
            "start_to_ready_s": spread([r["start_to_ready_s"] for r in mine]),
            "start_to_warm_s": spread(warm_times) if warm_times else None,
            "warmed_up_when_ready": sum(r["warmed_up_when_ready"] for r in mine),
            "first_s": spread([r["first"]["submit_to_final_s"] for r in mine]),
            "second_s": spread([r["second"]["submit_to_final_s"] for r in mine]),
            "ratio": spread([r["ratio"] for r in mine]),
            "first_queued_s": spread([r["first"]["queued_s"] or 0.0 for r in mine]),
            "first_running_s": spread([r["first"]["running_s"] or 0.0 for r in mine]),
            "second_running_s": spread([r["second"]["running_s"] or 0.0 for r in mine]),
            "not_succeeded": [f"{r['worker']} {k}: {r[k]['status']} {r[k]['error']}"
                              for r in mine for k in ("first", "second")
                              if r[k]["status"] != "succeeded"],
        }
        rows[warm] = row
        to_warm = cell(row["start_to_warm_s"]) if row["start_to_warm_s"] else "-"
        print(f"{warm:<8} {cell(row['start_to_ready_s']):<18} {to_warm:<18} "
              f"{cell(row['first_s']):<18} {cell(row['second_s']):<18} {cell(row['ratio']):<20} "
              f"{row['first_queued_s']['median']:.2f}+{row['first_running_s']['median']:.2f}"
              f" / {row['second_running_s']['median']:.2f}")
        if warm == "on":
            took = [r["warm_up_s"] for r in mine if r["warm_up_s"] is not None]
            row["warm_up_s"] = spread(took) if took else None
            print(f"  {row['warmed_up_when_ready']} of {len(mine)} worker(s) had finished "
                  "warming up when they first reported ready; the warm-up itself took "
                  f"{cell(row['warm_up_s']) if took else '-'} s (its log line)")
        for problem in row["not_succeeded"]:
            print(f"  NOT succeeded: {problem}")
    verdicts = {}
    for warm, row in rows.items():
        r = row["ratio"]
        ok = ("met" if r["max"] <= args.target else "met by the median"
              if r["median"] <= args.target else "NOT met")
        verdicts[warm] = {"limit": args.target, "median": r["median"], "verdict": ok}
        print(f"target first job <= {args.target}x the second (warm-up {warm}): "
              f"{r['median']:.2f}x, {ok}")
    if args.json is not None:
        report = {"bench": "first_job",
                  "config": {k: str(v) if isinstance(v, Path) else v
                             for k, v in vars(args).items()},
                  "spec": job_spec(args, 0), "runs": runs, "rows": rows, "target": verdicts}
        write_report(args.json, report)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
