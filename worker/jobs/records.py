"""The records of job state: what a job and a sweep are, whatever store keeps them.

Torch-free and store-free (no Redis here): statuses and their allowed moves, the job record
and its views (summary, page, the reaper's and the event stream's), the attempt lease, the
sweep record, ids, and the reasons the store writes when it ends a job on its own. How they
are written to Redis is ``worker/jobs/codec.py``; the store itself is ``worker/jobs/store.py``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal, get_args

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]
FinalStatus = Literal["succeeded", "failed", "cancelled", "timed_out"]
STATUSES: Final[tuple[JobStatus, ...]] = get_args(JobStatus)
FINAL_STATUSES: Final[frozenset[str]] = frozenset(get_args(FinalStatus))

#: The statuses a job may move *from* into each status. Absent pairs are refused.
ALLOWED_FROM: Final[Mapping[JobStatus, tuple[JobStatus, ...]]] = {
    "running": ("queued", "running"),  # running -> running: a redelivered or retried attempt
    "succeeded": ("running",),
    "failed": ("queued", "running"),  # queued -> failed: the task could not be enqueued
    "cancelled": ("queued", "running"),
    "timed_out": ("running",),
}

#: Upper bounds (seconds) of the job duration histogram (``/metrics``).
DURATION_BUCKETS: Final[tuple[float, ...]] = (
    1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200,
)

JOB_ID_RE: Final = re.compile(r"^[0-9a-f]{32}$")
SWEEP_ID_RE: Final = re.compile(r"^[0-9a-f]{32}$")
OWNER_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
#: A job's tags (labels for listings): at most MAX_TAGS, each TAG_PATTERN (safe in key names).
TAG_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_.:=+/-]{0,39}$"
TAG_RE: Final = re.compile(TAG_PATTERN)
MAX_TAGS: Final = 16

ClaimOutcome = Literal["started", "busy", "final", "missing", "cancelled", "exhausted"]
ReapOutcome = Literal["requeued", "failed", "cancelled", "alive", "skip"]
LeaseAnswer = Literal["ok", "cancel", "lost"]

CANCEL_QUEUED_REASON: Final = "cancelled before it started"
CANCEL_REASON: Final = "cancelled on request"


def exhausted_reason(max_attempts: int) -> str:
    """The error of a job that ran out of attempts (every worker that ran it was lost)."""
    return (
        f"gave up after {max_attempts} attempt(s): the worker running it was lost each time "
        "(killed, out of memory, or its host went away)"
    )


def bucket_label(bound: float) -> str:
    """The label of a duration bucket as the store keeps it (``1``, ``0.5``): Prometheus's
    ``le`` without a trailing ``.0``."""
    return f"{bound:g}"


def new_job_id() -> str:
    """A random, unguessable job id (uuid4 as 32 hex digits)."""
    return uuid.uuid4().hex


def new_sweep_id() -> str:
    """A random, unguessable sweep id (uuid4 as 32 hex digits)."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


# --- jobs --------------------------------------------------------------------------------


@dataclass(frozen=True)
class JobSummary:
    """What a listing shows per job (no spec, no result)."""

    id: str
    status: JobStatus
    name: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    owner: str | None  # the API key's name (None: submitted without auth)
    # keyword-only, so that JobRecord's own fields may follow without defaults
    tags: tuple[str, ...] = field(default=(), kw_only=True)
    sweep_id: str | None = field(default=None, kw_only=True)  # the sweep it is a point of
    headline: str | None = field(default=None, kw_only=True)  # the result's verdict line
    top_finding: tuple[str, str] | None = field(default=None, kw_only=True)  # (code, severity)


@dataclass(frozen=True)
class JobRecord(JobSummary):
    """A whole job record as stored."""

    spec: str  # the normalized spec JSON, exactly as validated
    queue: str
    worker: str | None
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    callback_url: str | None = None
    cancel_requested: bool = False
    webhook: dict[str, Any] | None = None  # callback delivery state (worker/jobs/webhooks.py)
    mlflow: dict[str, Any] | None = None  # MLflow export state (worker/runtime/mlflow_delivery.py)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class JobPage:
    items: list[JobSummary]
    next_cursor: str | None


@dataclass(frozen=True)
class JobFilter:
    """What a listing keeps: every condition given must hold (``tags``: each of them)."""

    status: JobStatus | None = None
    owner: str | None = None
    tags: tuple[str, ...] = ()
    sweep_id: str | None = None
    created_after: datetime | None = None  # aware; strictly after

    def matches(self, job: JobSummary) -> bool:
        return ((self.status is None or job.status == self.status)
                and (self.owner is None or job.owner == self.owner)
                and all(tag in job.tags for tag in self.tags)
                and (self.sweep_id is None or job.sweep_id == self.sweep_id)
                and (self.created_after is None or job.created_at > self.created_after))


@dataclass(frozen=True)
class LiveState:
    """The few small fields of a job that a live event stream re-reads on every wake-up (no
    spec, no result)."""

    status: JobStatus
    attempts: int
    worker: str | None
    cancel_requested: bool
    error: str | None
    updated_at: datetime | None
    finished_at: datetime | None
    progress: dict[str, Any] | None
    owner: str | None

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class Claim:
    """What ``claim`` did: ``started`` (as ``attempt``), or why not."""

    outcome: ClaimOutcome
    attempt: int = 0
    lease: str | None = None  # ``busy``: the live lease ("node|pid|attempt")
    status: str | None = None  # ``final``: the job's status


@dataclass(frozen=True)
class Lease:
    """Who runs an attempt: the Celery node, the process id there, and the attempt."""

    node: str
    pid: int
    attempt: int

    @classmethod
    def parse(cls, value: str) -> Lease | None:
        node, _, rest = value.rpartition("|")
        node, _, pid = node.rpartition("|")
        try:
            return cls(node=node, pid=int(pid), attempt=int(rest))
        except ValueError:
            return None


@dataclass(frozen=True)
class RunningJob:
    """A running job as the reaper sees it."""

    id: str
    attempt: int
    queue: str
    worker: str | None
    lease_alive: bool


@dataclass(frozen=True)
class StoreSnapshot:
    """Counts for ``/metrics``: jobs per status and the duration histogram."""

    jobs: dict[str, int]
    # status -> {bucket_label(b): n, ..., "+Inf": n, "sum": s}
    durations: dict[str, dict[str, float]]


# --- sweeps ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SweepPoint:
    index: int
    values: dict[str, Any]
    job_ids: list[str]  # oldest first; the last one is the point's current job


@dataclass(frozen=True)
class SweepRecord:
    id: str
    name: str | None
    mode: str
    base: dict[str, Any]
    axes: dict[str, list[Any]]
    variants: dict[str, dict[str, Any]] | None
    points: list[SweepPoint]
    created_at: datetime
    updated_at: datetime
    owner: str | None = None  # the API key's name when auth is on (its jobs carry it too)
    tags: tuple[str, ...] = ()  # every job of the sweep carries them


@dataclass(frozen=True)
class SweepPage:
    items: list[SweepRecord]
    next_cursor: str | None
