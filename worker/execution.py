"""Run one job from its record: the plain, testable function behind the Celery task.

``execute_job`` is idempotent on the job id: a final job is left alone (a redelivered task
does nothing), and every start counts an attempt. The run's ``summary.outcome`` decides the
final status: ``completed`` and ``diverged`` are results (``succeeded``), ``timed_out`` keeps
its partial result, ``stopped`` (the job was taken away from this attempt) is ``cancelled``.
The training function is passed in, so this module stays torch-free and tests can drive it
with a plain function.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from celery.exceptions import SoftTimeLimitExceeded

from worker.errors import JobNotFound, JobStateConflict, StoreUnavailable
from worker.jobstore import FinalStatus, JobStatus, JobStore
from worker.spec import ExperimentSpec

log = logging.getLogger(__name__)

ProgressFn = Callable[[dict[str, Any]], None]
StopFn = Callable[[], bool]
RunFn = Callable[[ExperimentSpec, ProgressFn, StopFn], dict[str, Any]]

MAX_ERROR_CHARS = 2000


class ProgressReporter:
    """Throttled progress writes; notices when this attempt no longer owns the job.

    Progress is best-effort: a failed write is logged and training goes on. When the store
    refuses a write (the job went final elsewhere, or a newer attempt took it over),
    ``should_stop`` turns true so the training loop ends at its next log point.
    """

    def __init__(self, store: JobStore, job_id: str, attempt: int, interval_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._job_id = job_id
        self._attempt = attempt
        self._interval = interval_s
        self._clock = clock
        self._last_write: float | None = None
        self.latest: dict[str, Any] | None = None
        self.superseded = False

    def __call__(self, progress: dict[str, Any]) -> None:
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
        return self.superseded


def describe_error(exc: BaseException) -> str:
    """``Type: message`` for the job record: what went wrong, without a traceback."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


def execute_job(
    store: JobStore,
    job_id: str,
    *,
    worker: str,
    run: RunFn,
    progress_interval_s: float = 0.5,
    time_limit_s: int | None = None,
) -> JobStatus | None:
    """Run the job and record its outcome; return the status written (None: nothing to do)."""
    try:
        record = store.get(job_id)
    except JobNotFound:
        log.warning("job %s does not exist (expired?); dropping its task", job_id)
        return None
    if record.is_final:
        log.info("job %s is already %s; nothing to do", job_id, record.status)
        return None
    try:
        record = store.start(job_id, worker=worker)
    except JobStateConflict as exc:
        log.info("not starting job %s: %s", job_id, exc)
        return None
    attempt = record.attempts
    reporter = ProgressReporter(store, job_id, attempt, progress_interval_s)
    log.info("job %s: attempt %d on %s", job_id, attempt, worker)

    def finish(status: FinalStatus, **outcome: Any) -> JobStatus | None:
        try:
            store.finish(job_id, status, attempt=attempt, progress=reporter.latest, **outcome)
        except JobStateConflict as exc:
            log.warning("outcome of job %s not recorded: %s", job_id, exc)
            return None
        log.info("job %s: %s", job_id, status)
        return status

    try:
        spec = ExperimentSpec.model_validate_json(record.spec)
        result = run(spec, reporter, reporter.should_stop)
    except SoftTimeLimitExceeded:
        limit = f" of {time_limit_s} s" if time_limit_s else ""
        return finish("timed_out", error=f"the job exceeded its time limit{limit}")
    except Exception as exc:  # any failure of the run is the job's outcome, not the task's
        log.exception("job %s failed", job_id)
        return finish("failed", error=describe_error(exc))
    outcome = result.get("summary", {}).get("outcome")
    if outcome == "timed_out":
        return finish("timed_out", result=result,
                      error="training stopped at its time limit; the result is partial")
    if outcome == "stopped":
        return finish("cancelled", result=result, error="training was stopped")
    return finish("succeeded", result=result)  # completed, or diverged: both are results
