"""API throughput and latency: ours against bare FastAPI apps, side by side in one run.

It starts a private ``redis-server``, our API (``uvicorn service.main:app``) and two bare
FastAPI apps (``bench/bare_api.py``: the same routes, parsing the same body with a pydantic
model, no validation, no Redis; ``bare`` with plain ``def`` handlers, the targets' reference,
and ``bare-async``, the same as ``async def``, as ours are) as uvicorn servers with the same
number of processes, each logging as deployed: one access line per request (ours its own, as
``trainability api`` and the API image run it with uvicorn's off; the bare apps uvicorn's).
Then it drives them with ``wrk`` (Debian's package):
  post   POST /v1/experiments with a small valid spec (ours records a job and pushes its task
         each time; no worker runs, so the jobs stay queued; auth is off, so no per-key limit
         of queued jobs applies and every answer should be a 202),
  get    GET /v1/experiments/{id} of one queued job (the bare apps answer a copy of our
         answer, so the answers are the same size).
The six (app, route) pairs run in a shuffled order each round, after an unmeasured warm-up
of each. Per pair: requests/s, latency p50/p90/p99 (wrk's own histogram), and the answers'
status codes (every answer that is not the expected 202/200 is counted and reported: it would
make a throughput figure meaningless). Ratios ours/bare (and ours/bare-async, printed beside)
are per round, median [min-max]. The targets checked: POST >= 0.5x the bare endpoint, GET
>= 0.7x.

Usage (the full measurement: about 3.5 minutes, 3 rounds of 6 x 10 s):
  .venv/bin/python bench/bench_api.py --duration 10 --connections 32 --threads 2 --rounds 3 \
      --json bench/out/api.json
Smoke run (about 40 s):
  .venv/bin/python bench/bench_api.py --duration 2 --rounds 1
Options: [--processes 1] (uvicorn --workers, every app) [--wrk /usr/bin/wrk]
  [--quiet-logs] (every app without access lines: uvicorn --no-access-log --log-level warning)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import redis

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_first_job import free_port, pings, redis_argv  # noqa: E402
from bench.raw_numbers import write_report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGETS = {"post": 0.5, "get": 0.7}
EXPECTED = {"post": 202, "get": 200}
#: Ours, the bare app with sync handlers (the targets' reference), its async twin.
APPS = ("ours", "bare", "bare-async")

SPEC: dict[str, Any] = {
    "spec_version": 1,
    "name": "bench-api",
    "model": {"family": "mlp", "depth": 4, "width": 64, "activation": "relu"},
    "init": {"scheme": "kaiming_normal"},
    "data": {"kind": "spirals", "n_train": 512, "n_val": 128},
    "optimizer": {"lr": 0.05, "momentum": 0.9},
    "training": {"steps": 200, "batch_size": 64, "device": "cpu"},
    "diagnostics": {"preset": "standard"},
}

# Counts every status code across wrk's threads and prints one parsable line at the end.
STATS_LUA = """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do total[code] = (total[code] or 0) + n end
  end
  local parts = {}
  for code, n in pairs(total) do table.insert(parts, string.format('"%d": %d', code, n)) end
  io.write(string.format(
    'BENCH {"requests": %d, "duration_us": %d, "bytes": %d, "errors": {"connect": %d, '
    .. '"read": %d, "write": %d, "status": %d, "timeout": %d}, "latency_us": {"p50": %d, '
    .. '"p90": %d, "p99": %d, "mean": %.1f, "max": %d}, "statuses": {%s}}\\n',
    summary.requests, summary.duration, summary.bytes, summary.errors.connect,
    summary.errors.read, summary.errors.write, summary.errors.status, summary.errors.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.mean,
    latency.max, table.concat(parts, ", ")))
end
"""


def wait_for(predicate: Callable[[], bool], timeout: float, what: str,
             proc: subprocess.Popen[bytes] | None = None, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:]) if log else ""
            raise SystemExit(f"bench_api: {what} did not come up\n{tail}")
        time.sleep(0.1)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code < 500
    except httpx.HTTPError:
        return False


class Procs:
    """The processes this bench started, stopped (SIGTERM, then SIGKILL) in reverse order."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str], log: Path, env: dict[str, str] | None = None,
              cwd: Path = ROOT) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def uvicorn_argv(app: str, port: int, processes: int, quiet: bool) -> list[str]:
    argv = [sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(processes)]
    if app.startswith("bare_api"):
        argv += ["--app-dir", str(ROOT / "bench")]
    if quiet:
        argv += ["--no-access-log", "--log-level", "warning"]
    elif not app.startswith("bare_api"):
        # as deployed (`trainability api`, the API image): the access line is our own
        # (service/live/metrics.py), not uvicorn's; the bare app keeps uvicorn's, its only one
        argv += ["--no-access-log"]
    return argv


def run_wrk(wrk: str, url: str, script: Path, args: argparse.Namespace,
            duration: float) -> dict[str, Any]:
    argv = [wrk, "-t", str(args.threads), "-c", str(args.connections),
            "-d", f"{max(1, round(duration))}s", "--latency", "-s", str(script), url]
    out = subprocess.run(argv, capture_output=True, text=True, check=True,
                         timeout=duration + 60).stdout
    match = re.search(r"^BENCH (\{.*\})$", out, re.MULTILINE)
    if match is None:
        raise SystemExit(f"bench_api: no summary line in wrk's output:\n{out}")
    stats: dict[str, Any] = json.loads(match.group(1))
    stats["requests_per_s"] = stats["requests"] / (stats["duration_us"] / 1e6)
    stats["wrk_output"] = out
    return stats


def spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"median": statistics.median(ordered), "min": ordered[0], "max": ordered[-1],
            "n": len(ordered)}


def main() -> int:
    """Long: the bench as one script read top to bottom (start Redis and both apps, warm up, wrk in
    shuffled rounds, the table and verdicts); its steps are used nowhere else, and split up they
    would only pass the same dozen locals around."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--duration", type=float, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1, help="uvicorn processes per app")
    parser.add_argument("--quiet-logs", action="store_true")
    parser.add_argument("--wrk", default=shutil.which("wrk") or "/usr/bin/wrk")
    parser.add_argument("--json", type=Path, default=None, help="write every raw number here")
    args = parser.parse_args()
    if not Path(args.wrk).exists():
        raise SystemExit("bench_api: wrk not found (apt-get install wrk) or pass --wrk")
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        raise SystemExit("bench_api: redis-server not found (apt-get install redis-server)")

    tmp = Path(tempfile.mkdtemp(prefix="trainability-bench-api-"))
    procs = Procs()
    try:
        rport, ours_port, bare_port, async_port = (free_port() for _ in range(4))
        procs.start(redis_argv(redis_server, rport, tmp), tmp / "redis.log")
        wait_for(lambda: pings(rport), 15, "redis-server", log=tmp / "redis.log")
        env = {**os.environ, "REDIS_URL": f"redis://127.0.0.1:{rport}/0",
               "PYTHONPATH": str(ROOT)}
        ours = procs.start(uvicorn_argv("service.main:app", ours_port, args.processes,
                                        args.quiet_logs), tmp / "ours.log", env)
        ours_url = f"http://127.0.0.1:{ours_port}"
        wait_for(lambda: answers(f"{ours_url}/healthz"), 60, "our API", ours, tmp / "ours.log")

        # one job to GET, and our answer as the bare app's GET body (same size)
        created = httpx.post(f"{ours_url}/v1/experiments", json=SPEC, timeout=30)
        if created.status_code != 202:
            raise SystemExit(f"bench_api: our API refused the spec: {created.status_code} "
                             f"{created.text}")
        job_id = created.json()["id"]
        got = httpx.get(f"{ours_url}/v1/experiments/{job_id}", timeout=30)
        got.raise_for_status()
        (tmp / "get_body.json").write_text(got.text)
        base = {"ours": ours_url}
        for name, module_app, port in (("bare", "bare_api:app", bare_port),
                                       ("bare-async", "bare_api:app_async", async_port)):
            proc = procs.start(uvicorn_argv(module_app, port, args.processes, args.quiet_logs),
                               tmp / f"{name}.log",
                               {**env, "BARE_API_GET_BODY": str(tmp / "get_body.json")})
            base[name] = f"http://127.0.0.1:{port}"
            probe = f"{base[name]}/v1/experiments/{job_id}"
            wait_for(functools.partial(answers, probe), 60, f"the {name} app", proc,
                     tmp / f"{name}.log")
            check = httpx.post(f"{base[name]}/v1/experiments", json=SPEC, timeout=30)
            if check.status_code != 202:
                raise SystemExit(f"bench_api: the {name} app answered {check.status_code}")

        post_lua = tmp / "post.lua"
        post_lua.write_text(
            'wrk.method = "POST"\n'
            f"wrk.body = {json.dumps(json.dumps(SPEC))}\n"
            'wrk.headers["Content-Type"] = "application/json"\n' + STATS_LUA)
        get_lua = tmp / "get.lua"
        get_lua.write_text(STATS_LUA)
        paths = {"post": "/v1/experiments", "get": f"/v1/experiments/{job_id}"}
        urls = {(app, route): url + paths[route] for app, url in base.items() for route in paths}
        scripts = {"post": post_lua, "get": get_lua}
        pairs = list(urls)

        print(f"wrk -t {args.threads} -c {args.connections}, {args.duration:g} s per run, "
              f"{args.rounds} rounds; {args.processes} uvicorn process(es) per app; "
              f"GET answer {len(got.content)} bytes; logs "
              f"{'off' if args.quiet_logs else 'as deployed (one access line per request)'}",
              flush=True)
        for app, route in pairs:  # warm-up, unmeasured
            run_wrk(args.wrk, urls[(app, route)], scripts[route], args, 1)
        runs: list[dict[str, Any]] = []
        order = random.Random(0)
        for rnd in range(args.rounds):
            shuffled = list(pairs)
            order.shuffle(shuffled)
            for app, route in shuffled:
                stats = run_wrk(args.wrk, urls[(app, route)], scripts[route], args,
                                args.duration)
                statuses = {int(k): v for k, v in stats["statuses"].items()}
                other = sum(v for k, v in statuses.items() if k != EXPECTED[route])
                runs.append({"round": rnd, "app": app, "route": route, **stats,
                             "statuses": statuses, "unexpected": other})
                lat = stats["latency_us"]
                print(f"  round {rnd + 1} {app:<10} {route:<4} {stats['requests_per_s']:8.0f} "
                      f"req/s  p50 {lat['p50'] / 1000:7.2f} ms  p99 {lat['p99'] / 1000:7.2f} ms"
                      f"  statuses {statuses}", flush=True)
        queued = redis.Redis(port=rport).llen("cpu")
    finally:
        procs.stop()

    rows: dict[str, Any] = {}
    for route in ("post", "get"):
        row: dict[str, Any] = {}
        for app in APPS:
            mine = [r for r in runs if r["app"] == app and r["route"] == route]
            row[app] = {
                "requests_per_s": spread([r["requests_per_s"] for r in mine]),
                **{f"{q}_ms": spread([r["latency_us"][q] / 1000 for r in mine])
                   for q in ("p50", "p90", "p99")},
                "unexpected_statuses": sum(r["unexpected"] for r in mine),
                "socket_errors": sum(sum(r["errors"].values()) for r in mine),
                "requests": sum(r["requests"] for r in mine),
            }
        for key, reference in (("ratio", "bare"), ("ratio_async", "bare-async")):
            per_round = []
            for rnd in range(args.rounds):
                o, b = ([r["requests_per_s"] for r in runs
                         if r["round"] == rnd and r["app"] == a and r["route"] == route][0]
                        for a in ("ours", reference))
                per_round.append(o / b)
            row[key] = spread(per_round)
        rows[route] = row

    print(f"\n{'route':<26} {'app':<10} {'req/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}"
          f" {'not 2xx*':>8} {'sock err':>8}")
    names = {"post": "POST /v1/experiments", "get": "GET /v1/experiments/{id}"}
    for route, row in rows.items():
        for app in APPS:
            a = row[app]
            print(f"{names[route]:<26} {app:<10} {a['requests_per_s']['median']:8.0f} "
                  f"{a['p50_ms']['median']:8.2f} {a['p90_ms']['median']:8.2f} "
                  f"{a['p99_ms']['median']:8.2f} {a['unexpected_statuses']:>8} "
                  f"{a['socket_errors']:>8}")
    print(f"(* answers other than {EXPECTED['post']} for POST / {EXPECTED['get']} for GET, "
          f"all rounds; medians over rounds; jobs left queued in Redis: {queued})")
    verdicts = {}
    for route, row in rows.items():
        r, limit = row["ratio"], TARGETS[route]
        clean = row["ours"]["unexpected_statuses"] == 0 and row["ours"]["socket_errors"] == 0
        ok = ("met" if r["min"] >= limit else "met by the median" if r["median"] >= limit
              else "NOT met")
        if not clean:
            ok += " (but some answers were not the expected status: see above)"
        verdicts[route] = {"limit": limit, "median": r["median"], "verdict": ok}
        print(f"target {names[route]} ours/bare >= {limit}: {r['median']:.2f}x "
              f"[{r['min']:.2f}-{r['max']:.2f}] over {r['n']} round(s), {ok}")
        a = row["ratio_async"]
        print(f"  (ours/bare-async, beside it: {a['median']:.2f}x [{a['min']:.2f}-{a['max']:.2f}])")
    if args.json is not None:
        report = {"bench": "api",
                  "config": {k: str(v) if isinstance(v, Path) else v
                             for k, v in vars(args).items()},
                  "spec": SPEC, "get_body_bytes": len(got.content), "jobs_queued": queued,
                  "runs": runs, "rows": rows, "target": verdicts}
        write_report(args.json, report)
    shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
