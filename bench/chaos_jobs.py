"""Chaos: jobs under SIGKILLed worker children, SIGKILLed workers and a crashed Redis.

    .venv/bin/python bench/chaos_jobs.py --jobs 200 --workers 2 --kills 20 \\
        --worker-sigkill 1 --redis-restarts 1 --seed 0
    .venv/bin/python bench/chaos_jobs.py --jobs 100 --kills 10 --json chaos.json   # raw numbers

It starts everything itself, on 127.0.0.1 only (the parts of ``bench/load_jobs.py``): a private
``redis-server`` with AOF (``appendfsync always``), the API (uvicorn in a thread) and
``--workers`` Celery workers (prefork, one training process each, torch threads 1, the short
lease and reaper timings of ``tests/integration/conftest.py``). It submits ``--jobs`` small
training jobs (300 SGD steps, diagnostics off: about half a second each) and, while they run,
a schedule drawn from ``random.Random(--seed)`` fires:

- ``--kills`` SIGKILLs of the training process (the prefork child) of a job that is mid-run,
  never twice for the same job (so no job can run out of ``TRAINABILITY_MAX_ATTEMPTS``);
- ``--worker-sigkill`` SIGKILLs of a whole worker (main process and child: a lost host), each
  followed by a new worker;
- ``--redis-restarts`` SIGKILLs of ``redis-server`` (a crash: no shutdown, no final fsync),
  started again on the same port from the same AOF.

Each event fires once a drawn number of jobs is final, so the kills spread over the run on a
fast machine and a slow one alike. Submissions carry an ``Idempotency-Key`` and are retried
through the Redis outage (503s). Then it waits until every accepted job is final and checks:
every job ``succeeded`` (none ``failed``), none lost (never final), none run twice (two attempts
that both finished training, counted in the workers' logs), and no task left in the broker
queues. It prints one table (``--json PATH``: the raw numbers too); exit status 1 if any check
fails, with the log lines of the first jobs that failed a check. ``unacked`` in the table counts
messages still reserved at the end; those of final jobs are harmless (redelivered after the
visibility timeout and dropped as final).

A Redis restart also ends the attempts running at that moment (Celery cancels late-acked tasks
when its broker connection drops, ``worker_cancel_long_running_tasks_on_connection_loss``), so
with ``--redis-restarts`` above 1 a job may meet ``TRAINABILITY_MAX_ATTEMPTS`` (3) and fail.

Why ``appendfsync always``: the check is "nothing acknowledged is lost". With ``everysec`` a
Redis crash may drop the writes of the last second or two that it had already answered (a
finish, a requeue, a broker message), which is Redis's documented trade and not a fault of the
job machinery; production compose runs ``everysec`` and the reaper re-sends queued jobs whose
message was lost after ``TRAINABILITY_QUEUED_LOST_AFTER_S``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import httpx
import redis

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.load_jobs import (  # noqa: E402
    FINAL,
    ROOT,
    _epoch,
    _free_port,
    _wait,
    listed,
    start_api,
    start_redis,
    start_worker,
    terminate,
    workers_ready,
)
from worker.jobs.broker import UNACKED_KEY  # noqa: E402

STEPS = 300
CHAOS_SPEC: dict[str, Any] = {
    "spec_version": 1,
    "name": "chaos",
    "model": {"family": "mlp", "depth": 2, "width": 16},
    "data": {"kind": "spirals", "n_train": 256, "n_val": 32},
    "training": {"steps": STEPS, "batch_size": 32, "device": "cpu"},
    "diagnostics": {"preset": "off"},
}

#: The integration tests' timings (tests/integration/conftest.py ``FAST``): a lost attempt is
#: re-queued within ~2 s; a queued job whose message a dead worker held is re-sent after 10 s.
#: Warm-up stays on, as in production: each new training process imports torch before it takes
#: a job. Without it the first job of every respawned child imports torch under its lease, and
#: on a loaded host that import holds the GIL long enough (over a second at a time) for the
#: 1.5 s lease to lapse: the reaper re-queues a live attempt and the job spends an attempt.
TIMINGS = {
    "TRAINABILITY_LIVENESS_INTERVAL_S": "0.5",
    "TRAINABILITY_LIVENESS_TTL_S": "2",
    "TRAINABILITY_LEASE_RENEW_INTERVAL_S": "0.25",
    "TRAINABILITY_LEASE_TTL_S": "1.5",
    "TRAINABILITY_REAPER_INTERVAL_S": "0.5",
    "TRAINABILITY_PROGRESS_INTERVAL_S": "0.1",
    "TRAINABILITY_CANCEL_CHECK_INTERVAL_S": "0.1",
    "TRAINABILITY_QUEUED_LOST_AFTER_S": "10",
    "TRAINABILITY_TORCH_THREADS": "1",
    "TRAINABILITY_WORKER_WARMUP": "true",
}

#: Redis as the check needs it: nothing it acknowledged is lost when it is SIGKILLed.
AOF_ALWAYS = ("--appendonly", "yes", "--appendfsync", "always")

Kind = Literal["child", "worker", "redis"]

# What the workers log (worker/runtime/attempt.py): an attempt starts; an attempt trained to
# the end and its result was recorded; an attempt ended and the store refused its outcome (the
# job had gone final, or to a newer attempt, meanwhile). An attempt that trained to the end
# logs one of the last two; a killed, terminated or superseded one logs neither.
_STARTED = re.compile(r"job ([0-9a-f]{32}): attempt (\d+) on")
_RECORDED = re.compile(r"job ([0-9a-f]{32}): succeeded\b")
_REFUSED = re.compile(r"outcome of job ([0-9a-f]{32}) not recorded")
# An attempt whose store call raised StoreUnavailable (Redis down) is retried by Celery: the
# retry line names only the task id, which the "received" line maps to the job id. Such an
# attempt may have trained to the end (a finish that failed) or not (a claim that failed): the
# run-twice count is exact when there are none, and the table says how many there were.
_RECEIVED = re.compile(r"run_experiment\[([0-9a-f-]{36})\] received.*?([0-9a-f]{32})")
_STAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d[.,]\d{3}")
_RETRIED = re.compile(r"run_experiment\[([0-9a-f-]{36})\] retry: .*StoreUnavailable")


@dataclass(frozen=True)
class Event:
    """Fire ``kind`` once ``after_final`` jobs are final."""

    after_final: int
    kind: Kind


def plan(
    rng: random.Random, jobs: int, *, kills: int, worker_kills: int, redis_restarts: int
) -> list[Event]:
    """The seeded schedule: each event at a final-job count drawn from the first 80 % of the
    run (the last jobs must still be running for a kill to find a target)."""
    if kills > jobs:
        raise ValueError(f"{kills} kills for {jobs} jobs: at most one kill per job")
    last = max(1, int(jobs * 0.8))
    counts: list[tuple[Kind, int]] = [
        ("child", kills),
        ("worker", worker_kills),
        ("redis", redis_restarts),
    ]
    kinds = [kind for kind, count in counts for _ in range(count)]
    return sorted((Event(rng.randrange(last), kind) for kind in kinds), key=lambda e: e.after_final)


class Cluster(Protocol):
    """The parts the chaos kills: worker processes (by node name) and Redis."""

    def training_processes(self, node: str) -> list[int]:
        """Pids of the prefork children of worker ``node`` (``name@host``)."""

    def kill_worker(self, node: str) -> None:
        """SIGKILL the whole worker ``node`` and start a new one in its place."""

    def restart_redis(self, down_s: float) -> None:
        """SIGKILL redis-server, wait ``down_s``, start it again on the same port and AOF."""

    def worker_logs(self) -> list[Path]:
        """The log of every worker started so far."""


def children(pid: int) -> list[int]:
    """Direct children of ``pid``: /proc's ``children`` lists, else ``pgrep -P``."""
    found: list[int] = []
    tasks = Path(f"/proc/{pid}/task")
    try:
        for task in tasks.iterdir():
            found += [int(c) for c in (task / "children").read_text().split()]
        return sorted(set(found))
    except OSError:
        done = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
        return [int(line) for line in done.stdout.split()]


@dataclass
class Hit:
    """One kill: what was killed and which job was mid-run there."""

    kind: Kind
    at_s: float
    job_id: str | None = None
    node: str | None = None
    pids: list[int] = field(default_factory=list)
    down_s: float | None = None


@dataclass
class Executions:
    """Per job, from the workers' logs: attempts started, attempts that trained to the end,
    and attempts that Celery retried after a Redis error."""

    started: Counter[str]
    trained: Counter[str]
    retried: Counter[str]


def executions(log_text: str) -> Executions:
    trained = Counter(m.group(1) for m in _RECORDED.finditer(log_text))
    trained.update(m.group(1) for m in _REFUSED.finditer(log_text))
    task_job = {m.group(1): m.group(2) for m in _RECEIVED.finditer(log_text)}
    retried = Counter(task_job.get(m.group(1), "?") for m in _RETRIED.finditer(log_text))
    return Executions(Counter(m.group(1) for m in _STARTED.finditer(log_text)), trained, retried)


@dataclass
class ChaosReport:
    jobs: int
    accepted: int
    statuses: dict[str, int]
    attempts: dict[int, int]
    lost: int
    run_twice: int
    redis_error_retries: int
    child_kills: int
    worker_kills: int
    redis_restarts: int
    planned: dict[str, int]
    wall_s: float
    max_time_to_final_s: float
    broker_left: dict[str, int]
    unacked_left: int
    hits: list[Hit] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    #: the jobs a check failed for: lost, not succeeded, run twice
    suspects: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def succeeded(self) -> int:
        return self.statuses.get("succeeded", 0)

    @property
    def failed(self) -> int:
        return sum(v for k, v in self.statuses.items() if k != "succeeded")

    def table(self) -> list[str]:
        rows = [
            ("jobs", f"{self.jobs} ({self.accepted} accepted)"),
            ("succeeded", str(self.succeeded)),
            ("failed", f"{self.failed}" + (f" {self.statuses}" if self.failed else "")),
            ("lost (never final)", str(self.lost)),
            ("run twice", str(self.run_twice)),
            ("redis-error retries", str(self.redis_error_retries)),
            ("child kills", f"{self.child_kills} of {self.planned.get('child', 0)} planned"),
            ("worker kills", f"{self.worker_kills} of {self.planned.get('worker', 0)} planned"),
            ("redis restarts", f"{self.redis_restarts} of {self.planned.get('redis', 0)} planned"),
            ("attempts", str(dict(sorted(self.attempts.items())))),
            ("wall time", f"{self.wall_s:.1f} s"),
            ("jobs/s", f"{self.accepted / self.wall_s:.2f}" if self.wall_s else "-"),
            ("max time-to-final", f"{self.max_time_to_final_s:.1f} s"),
            ("broker left", f"{self.broker_left}, unacked {self.unacked_left}"),
            ("checks", "all passed" if self.ok else "; ".join(self.problems)),
        ]
        width = max(len(k) for k, _ in rows)
        return [f"{k:<{width}}  {v}" for k, v in rows]

    def as_json(self) -> dict[str, Any]:
        raw = asdict(self)
        raw.update(ok=self.ok, succeeded=self.succeeded, failed=self.failed)
        return raw


class Submitter:
    """Submits jobs from a thread pool; a 503 or a dropped connection (Redis is down) is
    retried with the same ``Idempotency-Key``, so a retry never makes a second job."""

    def __init__(self, client: httpx.Client, n: int, threads: int, deadline: float) -> None:
        self.ids: dict[int, str] = {}
        self.submitted: dict[str, float] = {}
        self.errors: list[str] = []
        self._client = client
        self._deadline = deadline
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(threads)
        self._futures = [self._pool.submit(self._one, i) for i in range(n)]

    @property
    def done(self) -> bool:
        return all(f.done() for f in self._futures)

    def join(self) -> None:
        for future in self._futures:
            future.result()
        self._pool.shutdown()

    def _one(self, i: int) -> None:
        doc = {**CHAOS_SPEC, "training": {**CHAOS_SPEC["training"], "seed": i}}
        first = time.time()
        while True:
            try:
                response = self._client.post(
                    "/v1/experiments", json=doc, headers={"Idempotency-Key": f"chaos-{i}"}
                )
            except httpx.TransportError:
                response = None
            if response is not None and response.status_code in (200, 201, 202):
                with self._lock:
                    job_id = response.json()["id"]
                    self.ids[i] = job_id
                    self.submitted.setdefault(job_id, first)
                return
            if response is not None and response.status_code != 503:
                with self._lock:
                    self.errors.append(f"submission {i}: {response.status_code} {response.text}")
                return
            if time.monotonic() > self._deadline:
                with self._lock:
                    self.errors.append(f"submission {i}: not accepted before the deadline")
                return
            time.sleep(0.2)


def _try_listing(client: httpx.Client) -> dict[str, dict[str, Any]] | None:
    """Every job by id, or None while the API answers 503 (Redis restarting)."""
    try:
        return listed(client)
    except (httpx.TransportError, KeyError, ValueError):
        return None


def run_chaos(
    client: httpx.Client,
    cluster: Cluster,
    n: int,
    *,
    seed: int,
    kills: int,
    worker_kills: int = 0,
    redis_restarts: int = 1,
    broker: redis.Redis,
    threads: int = 8,
    timeout: float = 600,
    on_event: Callable[[Hit], None] | None = None,
) -> ChaosReport:
    """Submit ``n`` jobs, fire the seeded kills while they run, wait until every accepted
    job is final (or ``timeout``), and check: all succeeded, none lost, none run twice, no
    task left in the broker queues. Long: one timeline (submissions, kills and restarts
    interleaved on one clock) whose state the checks at the end read; the test
    (``tests/integration/test_chaos.py``) runs the same function."""
    rng = random.Random(seed)
    events = plan(rng, n, kills=kills, worker_kills=worker_kills, redis_restarts=redis_restarts)
    planned: dict[str, int] = dict(Counter(str(e.kind) for e in events))
    started = time.monotonic()
    deadline = started + timeout
    submitter = Submitter(client, n, threads, deadline)
    hits: list[Hit] = []
    hit_jobs: set[str] = set()
    jobs: dict[str, dict[str, Any]] = {}
    final_at: dict[str, float] = {}

    def mid_run(listing: dict[str, dict[str, Any]]) -> list[tuple[str, str]]:
        """(job id, node) of jobs in the middle of training that no kill has hit yet."""
        out = []
        for job_id in sorted(listing):
            if listing[job_id]["status"] != "running" or job_id in hit_jobs:
                continue
            try:  # the listing has no progress: ask each running job (one per worker)
                job = client.get(f"/v1/experiments/{job_id}").json()
            except (httpx.TransportError, ValueError):
                continue
            step = (job.get("progress") or {}).get("step") or 0
            if (
                job.get("status") == "running"
                and job.get("worker")
                # under way and not about to end: a job of STEPS steps takes a few tenths
                # of a second, and its progress may show only its first logged step before
                # it is past the window (seen: 1 of 2 planned kills found a target)
                and (1 <= step <= STEPS * 0.8)
            ):
                out.append((job_id, str(job["worker"])))
        return out

    def fire(event: Event, listing: dict[str, dict[str, Any]], at_s: float) -> Hit | None:
        hit = Hit(kind=event.kind, at_s=at_s)
        if event.kind == "redis":
            hit.down_s = round(rng.uniform(0.2, 1.0), 3)
            cluster.restart_redis(hit.down_s)
            return hit
        targets = mid_run(listing)
        if not targets:
            return None
        hit.job_id, hit.node = rng.choice(targets)
        hit_jobs.add(hit.job_id)
        if event.kind == "child":
            hit.pids = cluster.training_processes(hit.node)
            for pid in hit.pids:
                _sigkill(pid)
        else:
            cluster.kill_worker(hit.node)
        return hit

    while True:
        listing = _try_listing(client)
        now = time.monotonic()
        if listing is not None:
            jobs.update(listing)
            accepted = set(submitter.ids.values())
            for job_id in accepted:
                if jobs.get(job_id, {}).get("status") in FINAL:
                    final_at.setdefault(job_id, now)
            if submitter.done and accepted and accepted <= set(final_at):
                break
            # one event per look: the next one sees the listing after this one
            if events and events[0].after_final <= len(final_at):
                hit = fire(events[0], listing, round(now - started, 3))
                if hit is not None:  # None: nothing mid-run now, try again at the next look
                    events.pop(0)
                    hits.append(hit)
                    if on_event is not None:
                        on_event(hit)
        if now > deadline:
            break
        # a due kill looks again soon: a job is mid-run only briefly
        due = bool(events) and events[0].after_final <= len(final_at)
        time.sleep(0.05 if due else 0.2)
    wall_s = time.monotonic() - started
    submitter.join()

    ids = list(submitter.ids.values())
    problems = list(submitter.errors)
    final = {}
    for job_id in ids:
        try:
            final[job_id] = client.get(f"/v1/experiments/{job_id}").json()
        except (httpx.TransportError, ValueError):
            final[job_id] = jobs.get(job_id, {})
    statuses = Counter(str(j.get("status")) for j in final.values())
    lost = [i for i, j in final.items() if j.get("status") not in FINAL]
    statuses_final = {k: v for k, v in statuses.items() if k in FINAL}
    attempts = Counter(int(j.get("attempts") or 0) for j in final.values())
    if len(set(ids)) != len(ids):
        problems.append(f"{len(ids) - len(set(ids))} duplicate ids")
    if lost:
        problems.append(f"{len(lost)} jobs never final: {lost[:5]}")
    not_ok = {
        i: j.get("status")
        for i, j in final.items()
        if j.get("status") not in (None, "succeeded") and i not in lost
    }
    if not_ok:
        detail = [(i, final[i].get("error")) for i in list(not_ok)[:5]]
        problems.append(f"{len(not_ok)} jobs not succeeded: {detail}")
    incomplete = [
        i
        for i, j in final.items()
        if j.get("status") == "succeeded"
        and ((j.get("result") or {}).get("summary") or {}).get("steps") != STEPS
    ]
    if incomplete:
        problems.append(f"{len(incomplete)} succeeded jobs without a full result: {incomplete[:5]}")
    ends = [
        _epoch(j["finished_at"]) - submitter.submitted[i]
        for i, j in final.items()
        if j.get("finished_at")
    ]
    log_text = "\n".join(p.read_text(errors="replace") for p in cluster.worker_logs())
    runs = executions(log_text)
    twice = sorted(i for i in ids if runs.trained[i] > 1)
    never = sorted(i for i in ids if runs.trained[i] == 0 and i not in lost)
    if twice:
        problems.append(f"{len(twice)} jobs trained to the end twice: {twice[:5]}")
    if never:
        problems.append(f"{len(never)} final jobs with no finished run in the logs: {never[:5]}")
    left, unacked = broker_leftovers(broker, final)
    if any(left.values()):
        problems.append(f"tasks left in the broker queues: {left}")
    if unacked["live"]:
        problems.append(f"{unacked['live']} reserved messages of jobs that are not final")
    return ChaosReport(
        jobs=n,
        accepted=len(ids),
        statuses=dict(statuses_final),
        attempts=dict(attempts),
        lost=len(lost),
        run_twice=len(twice),
        redis_error_retries=sum(runs.retried.values()),
        child_kills=sum(h.kind == "child" for h in hits),
        worker_kills=sum(h.kind == "worker" for h in hits),
        redis_restarts=sum(h.kind == "redis" for h in hits),
        planned=planned,
        wall_s=wall_s,
        max_time_to_final_s=max(ends, default=0.0),
        broker_left=left,
        unacked_left=unacked["final"] + unacked["live"],
        hits=hits,
        problems=problems,
        suspects=[*lost, *not_ok, *twice, *never],
    )


def story(job_id: str, logs: Iterable[Path], width: int = 240) -> list[str]:
    """Every worker log line about ``job_id`` (its own lines and its tasks'), in time order:
    what to read when a job was lost or ran twice."""
    lines: list[tuple[str, str]] = []
    for path in logs:
        text = path.read_text(errors="replace")
        tasks = {m.group(1) for m in _RECEIVED.finditer(text) if m.group(2) == job_id}
        for line in text.splitlines():
            if job_id in line or any(t in line for t in tasks):
                stamp = _STAMP.search(line)
                when = re.sub(r"[T ,]", ".", stamp.group(0)) if stamp else ""
                lines.append((when, f"{path.stem}: {line[:width]}"))
    return [line for _, line in sorted(lines)]


def broker_leftovers(
    broker: redis.Redis, final: dict[str, dict[str, Any]]
) -> tuple[dict[str, int], dict[str, int]]:
    """Tasks still waiting per queue; messages still reserved (kombu's ``unacked``), split
    into those of final jobs (harmless: redelivered after the visibility timeout, then dropped
    as final) and the others."""
    ids_in = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
    left = {q: int(broker.llen(q)) for q in ("cpu", "gpu")}
    unacked = {"final": 0, "live": 0}
    for raw in broker.hvals(UNACKED_KEY):
        text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
        for job_id in ids_in.findall(text):
            if job_id in final:
                done = final[job_id].get("status") in FINAL
                unacked["final" if done else "live"] += 1
    return left, unacked


def _sigkill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


# --- standalone: start Redis (AOF), the API and workers; kill them ----------------------------


class LocalCluster:
    """redis-server, and Celery workers in process groups of their own, all started here."""

    def __init__(self, tmp: Path, workers: int) -> None:
        self.tmp = tmp
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.redis = start_redis(self.port, tmp, AOF_ALWAYS)
        self.env = {
            **os.environ,
            "REDIS_URL": self.url,
            "PYTHONPATH": str(ROOT),
            **TIMINGS,
        }
        self.workers: dict[str, subprocess.Popen[bytes]] = {}
        self.logs: list[Path] = []
        for i in range(workers):
            self.start_worker(f"chaos{i}")

    def start_worker(self, name: str) -> None:
        log = self.tmp / f"{name}.log"
        self.logs.append(log)
        self.workers[name] = start_worker(name, self.env, log)

    def training_processes(self, node: str) -> list[int]:
        proc = self.workers.get(node.split("@")[0])
        return children(proc.pid) if proc is not None and proc.poll() is None else []

    def kill_worker(self, node: str) -> None:
        name = node.split("@")[0]
        proc = self.workers.pop(name, None)
        if proc is not None:
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(timeout=30)
        self.start_worker(f"{name}-{len(self.logs)}")

    def restart_redis(self, down_s: float) -> None:
        self.redis.kill()
        self.redis.wait(timeout=15)
        time.sleep(down_s)
        self.redis = start_redis(self.port, self.tmp, AOF_ALWAYS)

    def worker_logs(self) -> list[Path]:
        return list(self.logs)

    def stop(self) -> None:
        terminate([*self.workers.values(), self.redis])


def main() -> int:
    """Long: the bench as one script read top to bottom (start the cluster, run the chaos, print
    the story and the checks); its steps are used nowhere else, and split up they would only
    pass the same dozen locals around."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kills", type=int, default=20, help="worker-child SIGKILLs")
    parser.add_argument("--worker-sigkill", type=int, default=1, help="whole-worker SIGKILLs")
    parser.add_argument("--redis-restarts", type=int, default=1, help="redis-server SIGKILLs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=8, help="concurrent submitters")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--json", type=Path, default=None, help="write the raw numbers here")
    parser.add_argument("--keep", action="store_true", help="keep the logs (printed path)")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="trainability-chaos-"))
    logging.basicConfig(level=logging.WARNING)  # the API's access lines would drown the report
    logging.getLogger("service").setLevel(logging.ERROR)  # and so would its 503s during restarts
    cluster = LocalCluster(tmp, args.workers)
    server = None
    try:
        broker = redis.Redis.from_url(cluster.url)
        server, api_port = start_api(cluster.url)
        with httpx.Client(base_url=f"http://127.0.0.1:{api_port}", timeout=60) as client:
            _wait(lambda: workers_ready(client) >= args.workers, 120, "the workers")
            print(
                f"{args.jobs} jobs, {args.workers} workers, seed {args.seed}: "
                f"{args.kills} child kills, {args.worker_sigkill} worker kills, "
                f"{args.redis_restarts} redis restarts",
                flush=True,
            )

            def say(hit: Hit) -> None:
                what = f"{hit.kind:<6} at {hit.at_s:6.1f} s"
                where = f" job {hit.job_id} on {hit.node} {hit.pids or ''}" if hit.job_id else ""
                down = f" down {hit.down_s} s" if hit.down_s is not None else ""
                print(f"  kill {what}{where}{down}", flush=True)

            report = run_chaos(
                client,
                cluster,
                args.jobs,
                seed=args.seed,
                kills=args.kills,
                worker_kills=args.worker_sigkill,
                redis_restarts=args.redis_restarts,
                broker=broker,
                threads=args.threads,
                timeout=args.timeout,
                on_event=say,
            )
        print("\n".join(report.table()))
        for job_id in report.suspects[:5]:
            print(f"\njob {job_id}:", *story(job_id, cluster.worker_logs()), sep="\n  ")
        if args.json is not None:
            args.json.write_text(json.dumps(report.as_json(), indent=2) + "\n")
        return 0 if report.ok else 1
    finally:
        if server is not None:
            server.should_exit = True
        cluster.stop()
        if args.keep:
            print(f"logs in {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
