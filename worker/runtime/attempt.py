"""Run one job from its record: the plain, testable function behind the Celery task.

``execute_job`` is idempotent on the job id. It *claims* the job first (``JobStore.claim``, one
Lua script): a final job is left alone (a redelivered task does nothing); a job that another
live attempt holds is left to it (a duplicate delivery, e.g. after Redis's visibility timeout,
is dropped: the job runs once); a job whose cancellation was asked ends ``cancelled`` without
running; a job that already used its ``max_attempts`` ends ``failed``. Otherwise a new attempt
starts, holding a lease in Redis that a lease thread renews while the run goes on; when the
process dies the lease expires and the reaper (``worker/runtime/reaper.py``) takes over.

The run's ``summary.outcome`` decides the final status: ``completed`` and ``diverged`` are
results (``succeeded``), ``timed_out`` keeps its partial result, ``stopped`` is ``cancelled``
(with the partial result) when cancellation was asked. The training function is passed in, so
this module stays torch-free and tests can drive it with a plain function.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from worker.core.errors import JobNotFound, JobStateConflict, StoreUnavailable, TrainabilityError
from worker.core.logs import job_context
from worker.core.spec import ExperimentSpec
from worker.jobs.records import (
    CANCEL_REASON,
    Claim,
    FinalStatus,
    JobRecord,
    JobStatus,
    Lease,
)
from worker.jobs.store import JobStore
from worker.runtime.periodic import Periodic

log = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, Any]], None]
StopFn = Callable[[], bool]
RunFn = Callable[[ExperimentSpec, ProgressFn, StopFn], dict[str, Any]]
#: Called with (job_id, final status) after this process wrote a final status.
FinalFn = Callable[[str, str], None]

MAX_ERROR_CHARS = 2000


def eta_seconds(progress: dict[str, Any]) -> float | None:
    """Seconds left at the pace so far: elapsed / step * (total_steps - step)."""
    step, total, elapsed = (progress.get(k) for k in ("step", "total_steps", "elapsed_s"))
    if not (isinstance(step, int | float) and isinstance(total, int | float)
            and isinstance(elapsed, int | float)) or step <= 0:
        return None
    return max(0.0, float(elapsed) / step * (total - step))


class AttemptLease:
    """A daemon thread that renews the attempt's lease every ``interval_s``.

    The lease (``JobStore.renew_lease``) says "this attempt is alive"; when the process dies
    (SIGKILL, OOM, host lost) nobody renews it and it expires after ``ttl_s``. The answer also
    carries the cancel flag and whether the attempt lost the job to another one, which the
    training loop reads through ``ProgressReporter.should_stop``.
    """

    def __init__(self, store: JobStore, job_id: str, attempt: int, lease: str,
                 interval_s: float, ttl_s: float) -> None:
        self._store = store
        self._job_id = job_id
        self._attempt = attempt
        self._lease = lease
        self._ttl = ttl_s
        self._periodic = Periodic(f"lease-{job_id[:8]}", interval_s, self._tick)
        self.cancel_requested = False
        self.lost = False

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def renew(self) -> None:
        try:
            answer = self._store.renew_lease(self._job_id, attempt=self._attempt,
                                             lease=self._lease, lease_ttl_s=self._ttl)
        except StoreUnavailable as exc:
            log.warning("lease of job %s not renewed: %s", self._job_id, exc)
            return
        if answer == "cancel":
            self.cancel_requested = True
        elif answer == "lost":
            self.lost = True

    def _tick(self) -> bool:
        with job_context(self._job_id):
            self.renew()
        return not self.lost


class ProgressReporter:
    """Throttled progress writes (with an ETA); tells the loop when to stop.

    Progress is best-effort: a failed write is logged and training goes on. ``should_stop``
    turns true when cancellation was asked (the flag is read at most every
    ``cancel_check_interval_s``, and the lease renewal also brings it), or when this attempt no
    longer owns the job (the store refused a write: the job went final elsewhere, or a newer
    attempt took it over).
    """

    def __init__(self, store: JobStore, job_id: str, attempt: int, interval_s: float,
                 clock: Callable[[], float] = time.monotonic, *,
                 cancel_check_interval_s: float = 0.5,
                 lease: AttemptLease | None = None) -> None:
        self._store = store
        self._job_id = job_id
        self._attempt = attempt
        self._interval = interval_s
        self._clock = clock
        self._cancel_interval = cancel_check_interval_s
        self._lease = lease
        self._last_write: float | None = None
        self._last_cancel_check: float | None = None
        self.latest: dict[str, Any] | None = None
        self.superseded = False
        self.cancel_requested = False

    def __call__(self, progress: dict[str, Any]) -> None:
        eta = eta_seconds(progress)
        if eta is not None:
            progress = {**progress, "eta_s": round(eta, 3)}
        self.latest = progress
        now = self._clock()
        if self._last_write is not None and now - self._last_write < self._interval:
            return
        self._last_write = now
        try:
            stored = self._store.update_progress(self._job_id, progress, attempt=self._attempt)
        except StoreUnavailable as exc:
            log.warning("progress for job %s not stored: %s", self._job_id, exc)
            return
        if not stored:
            self.superseded = True

    def should_stop(self) -> bool:
        if self._lease is not None:
            self.cancel_requested |= self._lease.cancel_requested
            self.superseded |= self._lease.lost
        now = self._clock()
        if not self.cancel_requested and (
            self._last_cancel_check is None
            or now - self._last_cancel_check >= self._cancel_interval
        ):
            self._last_cancel_check = now
            try:
                self.cancel_requested = self._store.is_cancel_requested(self._job_id)
            except StoreUnavailable as exc:
                log.warning("cancel flag of job %s not read: %s", self._job_id, exc)
        return self.superseded or self.cancel_requested


OUT_OF_MEMORY = ("can't allocate memory", "Unable to allocate")  # host RAM, not CUDA


def describe_error(exc: BaseException) -> str:
    """``Type: message`` for the job record: what went wrong, without a traceback."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, MemoryError) or any(s in str(exc) for s in OUT_OF_MEMORY):
        text = ("out of memory: the run needed more memory than this training process may "
                f"use (see the dry run's memory_bytes and TRAINABILITY_WORKER_MEMORY_FRACTION)"
                f". {text}")
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def execute_job(
    store: JobStore,
    job_id: str,
    *,
    worker: str,
    run: RunFn,
    progress_interval_s: float = 0.5,
    time_limit_s: int | None = None,
    max_attempts: int = 3,
    lease_interval_s: float = 5.0,
    lease_ttl_s: float = 30.0,
    cancel_check_interval_s: float = 0.5,
    on_final: FinalFn | None = None,
) -> JobStatus | None:
    """Run the job and record its outcome; return the status written (None: nothing to do)."""
    how = AttemptKnobs(worker, run, progress_interval_s, time_limit_s, max_attempts,
                       lease_interval_s, lease_ttl_s, cancel_check_interval_s, on_final)
    with job_context(job_id):
        return execute_with(store, job_id, how)


@dataclass(frozen=True)
class AttemptKnobs:
    """What one attempt needs besides the store and the job: its knobs and its callbacks."""

    worker: str
    run: RunFn
    progress_interval_s: float
    time_limit_s: int | None
    max_attempts: int
    lease_interval_s: float
    lease_ttl_s: float
    cancel_check_interval_s: float
    on_final: FinalFn | None

    def announce(self, job_id: str, status: JobStatus) -> JobStatus:
        if self.on_final is not None:
            try:
                self.on_final(job_id, status)
            except TrainabilityError as exc:  # the reaper resends from the outbox
                log.warning("could not announce the end of job %s: %s", job_id, exc)
        return status


def execute_with(store: JobStore, job_id: str, how: AttemptKnobs) -> JobStatus | None:
    """``execute_job`` with its knobs in one object."""
    try:
        record = store.get(job_id)
    except JobNotFound:
        log.warning("job %s does not exist (expired or deleted); dropping its task", job_id)
        return None
    if record.is_final:
        log.info("job %s is already %s; nothing to do", job_id, record.status)
        return None
    holder = f"{how.worker}|{os.getpid()}"
    claim = claim_job(store, job_id, holder, how)
    if claim is None:
        return None
    if claim.outcome == "cancelled":
        log.info("job %s was cancelled before it started; not running it", job_id)
        return how.announce(job_id, "cancelled")
    if claim.outcome == "exhausted":
        log.error("job %s failed: %d attempts were lost", job_id, claim.attempt)
        return how.announce(job_id, "failed")
    return _run_attempt(store, record, claim.attempt, holder, how)


def claim_job(store: JobStore, job_id: str, holder: str, how: AttemptKnobs) -> Claim | None:
    """Claim the job for this attempt; None when there is nothing to run."""
    worker = how.worker
    try:
        claim = store.claim(job_id, worker=worker, holder=holder, lease_ttl_s=how.lease_ttl_s,
                            max_attempts=how.max_attempts)
        if claim.outcome == "busy" and claim.lease is not None:
            # The previous attempt ran in a child of this same node that is gone (SIGKILL,
            # OOM: the message came back through task_reject_on_worker_lost), or in this very
            # process, which runs one task at a time (a retry after a Redis blip): take over
            # now instead of waiting for its lease to expire.
            other = Lease.parse(claim.lease)
            if other is not None and other.node == worker and (
                other.pid == os.getpid() or not pid_alive(other.pid)
            ):
                claim = store.claim(job_id, worker=worker, holder=holder,
                                    lease_ttl_s=how.lease_ttl_s, max_attempts=how.max_attempts,
                                    replace=claim.lease)
    except JobNotFound:
        log.warning("job %s disappeared before it started", job_id)
        return None
    if claim.outcome == "busy":
        log.warning("job %s is already running (lease %s); dropping this duplicate delivery",
                    job_id, claim.lease)
        return None
    if claim.outcome in ("final", "missing"):
        log.info("job %s is %s; nothing to do", job_id, claim.status or "gone")
        return None
    return claim


class JobAttempt:
    """One claimed job's attempt: its renewed lease, its progress reporter, and how its
    outcome is recorded (only while this attempt still owns the job)."""

    def __init__(self, store: JobStore, record: JobRecord, attempt: int, holder: str,
                 how: AttemptKnobs) -> None:
        self.store, self.record, self.job_id, self.attempt, self.how = (
            store, record, record.id, attempt, how)
        self.lease = AttemptLease(store, record.id, attempt, f"{holder}|{attempt}",
                                  how.lease_interval_s, how.lease_ttl_s)
        self.reporter = ProgressReporter(store, record.id, attempt, how.progress_interval_s,
                                         cancel_check_interval_s=how.cancel_check_interval_s,
                                         lease=self.lease)

    def finish(self, status: FinalStatus, **outcome: Any) -> JobStatus | None:
        try:
            self.store.finish(self.job_id, status, attempt=self.attempt,
                              progress=self.reporter.latest, **outcome)
        except JobStateConflict as exc:
            log.warning("outcome of job %s not recorded: %s", self.job_id, exc)
            return None
        log.info("job %s: %s", self.job_id, status)
        return self.how.announce(self.job_id, status)

    def failed(self, exc: BaseException) -> JobStatus | None:
        """The run raised: a soft time limit is ``timed_out``, anything else ``failed``."""
        if isinstance(exc, SoftTimeLimitExceeded):
            limit = f" of {self.how.time_limit_s} s" if self.how.time_limit_s else ""
            return self.finish("timed_out", error=f"the job exceeded its time limit{limit}")
        log.error("job %s failed", self.job_id, exc_info=exc)
        return self.finish("failed", error=describe_error(exc))

    def record_result(self, result: dict[str, Any]) -> JobStatus | None:
        """Record a run's result with the status its ``summary.outcome`` says (None:
        dropped, the attempt was superseded)."""
        summary = result.get("summary", {})
        if summary.get("outcome") == "timed_out":
            return self.finish("timed_out", result=result,
                               error="training stopped at its time limit; the result is partial")
        if summary.get("outcome") == "stopped":
            if self.reporter.superseded and not self.reporter.cancel_requested:
                log.warning("job %s: attempt %d was superseded; its result is dropped",
                            self.job_id, self.attempt)
                return None
            steps = summary.get("steps")
            at = f" at step {steps}" if steps is not None else ""
            return self.finish("cancelled", result=result,
                               error=f"{CANCEL_REASON}; training stopped{at}, the result is "
                               "partial")
        return self.finish("succeeded", result=result)  # completed or diverged: results


def _run_attempt(store: JobStore, record: JobRecord, attempt: int, holder: str,
                 how: AttemptKnobs) -> JobStatus | None:
    """Train under a renewed lease and record the outcome the run ended with."""
    job = JobAttempt(store, record, attempt, holder, how)
    log.info("job %s: attempt %d on %s", record.id, attempt, how.worker)
    job.lease.start()
    try:
        spec = ExperimentSpec.model_validate_json(record.spec)
        result = how.run(spec, job.reporter, job.reporter.should_stop)
    except Exception as exc:  # any failure of the run is the job's outcome, not the task's
        return job.failed(exc)
    finally:
        job.lease.stop()
    return job.record_result(result)
