"""Run a sweep cohort (``worker/core/cohorts.py``): several jobs, one batched training.

Every job of a cohort carries the cohort's job ids in its task. The first task a worker takes
claims its own job and then each sibling that is still queued and still of the same cohort
(``cohort_key`` of its recorded spec); each claimed job gets its own attempt, lease, progress
and cancel flag (``JobAttempt``), as if it ran alone. A sibling another attempt holds, that
ended, or that fails to parse is left to its own task. The siblings' own tasks then find their
jobs taken (``busy``, or final) and drop, as any duplicate delivery does. A task whose own job
has ended still claims what of its cohort is left: after a Redis failure while recording,
Celery retries the task (no job is marked failed for it); a retry in the same process takes
over the jobs it held, elsewhere their leases lapse and the reaper re-queues them.

Nothing is claimed when the design has no batched form (``batch_reason``): the job then runs
alone and each sibling on its own task, so the cohort loses no parallelism across workers; its
``result.cohort`` says why (size 1, the reason). A
job whose attempt dies mid-cohort is reaped and re-sent alone, like any lost job.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from pydantic import ValidationError

from worker.core.cohorts import cohort_key
from worker.core.errors import JobNotFound, StoreUnavailable
from worker.core.logs import job_context
from worker.core.spec import ExperimentSpec
from worker.jobs.records import JobRecord, JobStatus
from worker.jobs.store import JobStore
from worker.runtime.attempt import (
    AttemptKnobs,
    JobAttempt,
    ProgressFn,
    StopFn,
    claim_job,
    execute_with,
)

log = logging.getLogger(__name__)

#: Each member's result, by its index, as soon as it ends.
CohortResultFn = Callable[[int, dict[str, Any]], None]
#: Trains the specs together: (specs, their progress, their stop checks, on_result).
CohortRunFn = Callable[[list[ExperimentSpec], list[ProgressFn], list[StopFn], CohortResultFn],
                       None]
#: None when the spec's design trains batched, else why not.
BatchReasonFn = Callable[[ExperimentSpec], str | None]


def execute_cohort(store: JobStore, job_id: str, cohort: Sequence[str], how: AttemptKnobs, *,
                   run_cohort: CohortRunFn, batch_reason: BatchReasonFn
                   ) -> list[JobStatus | None]:
    """Run ``job_id`` with the siblings of ``cohort`` it can claim; the statuses written
    (this job's first)."""
    with job_context(job_id):
        try:
            record = store.get(job_id)
        except JobNotFound:
            return []
        try:
            spec = ExperimentSpec.model_validate_json(record.spec)
            key, reason = cohort_key(spec), batch_reason(spec)
        except Exception as exc:  # the job alone records what is wrong with it
            key, reason = None, f"its design could not be checked ({exc})"
        if key is None or reason is not None:
            if record.is_final:
                return []
            log.info("job %s trains alone: %s", job_id, reason or "not of a cohort")
            return [execute_with(store, job_id, _alone(how, cohort, reason))]
        holder = f"{how.worker}|{os.getpid()}"
        jobs: list[tuple[JobAttempt, ExperimentSpec]] = []
        statuses: list[JobStatus | None] = []
        for jid in [job_id, *(j for j in cohort if j != job_id)]:
            # a job that ended is skipped: its siblings may still be left (a retry)
            sibling = (None if record.is_final else record) if jid == job_id else _queued(
                store, jid)
            member = None if sibling is None else _member_spec(sibling, key)
            if sibling is None or member is None:
                continue
            attempt, status = _claim(store, jid, holder, how)
            if jid == job_id and attempt is None and status is None:
                return []  # a duplicate delivery: the job (and its cohort) runs elsewhere
            if status is not None:
                statuses.append(status)
            if attempt is not None:
                jobs.append((JobAttempt(store, sibling, attempt, holder, how), member))
        if not jobs:
            return statuses
        log.info("cohort of %d jobs (%s) on %s", len(jobs), ", ".join(
            j.job_id for j, _ in jobs), how.worker)
        return statuses + _train(jobs, run_cohort)


def _alone(how: AttemptKnobs, cohort: Sequence[str], reason: str | None) -> AttemptKnobs:
    """``how``, its result saying why the job trained alone (``result.cohort``)."""
    why = (f"{reason}: each point of the cohort trains as its own job" if reason
           else "its spec is not of a cohort: it trains as its own job")
    run = how.run

    def alone(spec: ExperimentSpec, progress: ProgressFn, stop: StopFn) -> dict[str, Any]:
        result = run(spec, progress, stop)
        result["cohort"] = {"size": 1, "index": 0, "batched": False, "fallback": why,
                            "job_ids": list(cohort)}
        return result

    return dataclasses.replace(how, run=alone)


def _queued(store: JobStore, job_id: str) -> JobRecord | None:
    try:
        record = store.get(job_id)
    except JobNotFound:
        return None
    return None if record.is_final else record


def _member_spec(record: JobRecord, key: str) -> ExperimentSpec | None:
    """The sibling's spec when it belongs to the cohort (``key``), else None."""
    try:
        spec = ExperimentSpec.model_validate_json(record.spec)
    except ValidationError:
        return None
    return spec if cohort_key(spec) == key else None


def _claim(store: JobStore, job_id: str, holder: str, how: AttemptKnobs
           ) -> tuple[int | None, JobStatus | None]:
    """The attempt started on the job, or the final status the claim wrote (cancelled before
    it started, attempts used up); (None, None): nothing to do."""
    claim = claim_job(store, job_id, holder, how)
    if claim is None:
        return None, None
    if claim.outcome == "cancelled":
        return None, how.announce(job_id, "cancelled")
    if claim.outcome == "exhausted":
        log.error("job %s failed: %d attempts were lost", job_id, claim.attempt)
        return None, how.announce(job_id, "failed")
    return claim.attempt, None


def _train(jobs: list[tuple[JobAttempt, ExperimentSpec]], run_cohort: CohortRunFn
           ) -> list[JobStatus | None]:
    """Train the claimed jobs together; each is recorded when its member ends."""
    ids = [job.job_id for job, _ in jobs]
    recorded: dict[int, JobStatus | None] = {}

    def on_result(k: int, result: dict[str, Any]) -> None:
        job = jobs[k][0]
        job.lease.stop()
        result["cohort"] = {**result.get("cohort", {}), "job_ids": ids}
        with job_context(job.job_id):
            recorded[k] = job.record_result(result)

    for job, _ in jobs:
        job.lease.start()
    try:
        run_cohort([spec for _, spec in jobs], [job.reporter for job, _ in jobs],
                   [job.reporter.should_stop for job, _ in jobs], on_result)
    except StoreUnavailable:
        # Redis, not the run: the task is retried (autoretry); the jobs recorded so far stay
        # final and the rest are taken over by the retry (same process), none marked failed
        raise
    except Exception as exc:  # the run's failure is the outcome of every job not yet recorded
        for k, (job, _) in enumerate(jobs):
            if k not in recorded:
                with job_context(job.job_id):
                    recorded[k] = job.failed(exc)
    finally:
        for job, _ in jobs:
            job.lease.stop()
    for k, (job, _) in enumerate(jobs):
        if k not in recorded:  # never reached: every member ends with a result
            with job_context(job.job_id):
                recorded[k] = job.failed(RuntimeError("the cohort ended without its result"))
    return [recorded.get(k) for k in range(len(jobs))]
