"""Sweep operations behind ``/v1/sweeps``: plain functions over the job and sweep stores.

Creating a sweep validates every point before writing anything, then writes every job record
and the sweep record, and only then enqueues the jobs (a job is never in the broker before its
record exists). A failed enqueue fails the jobs not yet sent, which a re-run can pick up. Points
that differ only in seed, learning rate, momentum or init gain are enqueued as cohorts (each
task names its cohort's jobs): one worker trains them as one batched model, each still its own
job (``worker/core/cohorts.py``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from service.auth import ANONYMOUS, Caller
from service.schemas.sweeps import (
    RerunPoint,
    SweepAccepted,
    SweepCancelled,
    SweepCreate,
    SweepProgress,
    SweepPublic,
    SweepRerun,
    SweepRow,
    SweepSummary,
    sweep_links,
)
from service.settings import ServiceSettings
from worker.core.budgets import estimate_cost, spec_problems
from worker.core.cohorts import cohort_key, cohorts
from worker.core.errors import (
    BrokerUnavailable,
    InvalidRequest,
    JobNotFound,
    JobStateConflict,
    QuotaExceeded,
    SweepNotFound,
    TrainabilityError,
)
from worker.core.spec import ExperimentSpec
from worker.core.sweeps import (
    Point,
    Row,
    ValidatedPoint,
    check_size,
    expand,
    sort_rows,
    sortable_columns,
    table_row,
    validate_points,
)
from worker.jobs.dispatch import JobDispatcher, queue_for
from worker.jobs.records import (
    FINAL_STATUSES,
    STATUSES,
    JobRecord,
    SweepPoint,
    SweepRecord,
    new_sweep_id,
    utcnow,
)
from worker.jobs.store import JobStore
from worker.jobs.sweep_store import SweepStore


def base_document(spec: ExperimentSpec) -> dict[str, Any]:
    """The base spec as the client wrote it (fields it left out keep their defaults)."""
    doc: dict[str, Any] = json.loads(spec.model_dump_json(exclude_unset=True))
    return doc


def owned_sweep(sweeps: SweepStore, sweep_id: str, caller: Caller) -> SweepRecord:
    """The sweep, or ``SweepNotFound`` when it belongs to another API key (never 403)."""
    record = sweeps.get(sweep_id)
    if caller.name is not None and record.owner != caller.name:
        raise SweepNotFound(sweep_id)
    return record


def varied_columns(record: SweepRecord) -> list[str]:
    return (["variant"] if record.variants else []) + list(record.axes)


def _points(body: SweepCreate, settings: ServiceSettings) -> list[Point]:
    check_size(body.axes, body.variants, body.mode, settings.max_sweep_points)
    for path in [*body.axes, *(p for sets in (body.variants or {}).values() for p in sets)]:
        if path in ("spec_version",):
            raise InvalidRequest(f"{path} cannot be varied", field=f"axes.{path}")
    return expand(body.axes, body.variants, body.mode)


def create_sweep(
    body: SweepCreate,
    *,
    settings: ServiceSettings,
    store: JobStore,
    sweeps: SweepStore,
    dispatcher: JobDispatcher,
    caller: Caller = ANONYMOUS,
) -> SweepAccepted:
    """Validate every point, record the jobs and the sweep, then enqueue the jobs."""
    base = base_document(body.base)
    points = validate_points(base, _points(body, settings),  # every problem of every point
                             lambda spec: spec_problems(spec, settings))
    sweep_id = new_sweep_id()
    jobs = _record_jobs(store, points, sweep_id=sweep_id, settings=settings, caller=caller,
                        tags=body.tags)
    now = utcnow()
    sweeps.create(SweepRecord(
        id=sweep_id, name=body.name, mode=body.mode, base=base,
        axes={k: list(v) for k, v in body.axes.items()},
        variants={k: dict(v) for k, v in body.variants.items()} if body.variants else None,
        points=[SweepPoint(index=vp.point.index, values=vp.point.values, job_ids=[job_id])
                for vp, (job_id, _) in zip(points, jobs, strict=True)],
        created_at=now, updated_at=now, owner=caller.name, tags=tuple(body.tags),
    ))
    cohorts_of = _cohorts(points, jobs, settings)
    _enqueue_all(store, dispatcher, jobs, cohorts_of)
    groups = list({c[0]: c for c in cohorts_of if c}.values())
    return SweepAccepted(id=sweep_id, points=len(jobs), job_ids=[j for j, _ in jobs],
                         cohorts=groups, links=sweep_links(sweep_id))


def _record_jobs(
    store: JobStore, points: Sequence[ValidatedPoint], *, sweep_id: str,
    settings: ServiceSettings, caller: Caller, tags: Sequence[str] = (),
) -> list[tuple[str, str]]:
    """One queued job per point, owned by the caller; (job id, queue) pairs.

    A key over its limit of queued plus running jobs gets the 429 of the first job that does
    not fit; the jobs this call already recorded are failed (never enqueued) first.
    """
    jobs: list[tuple[str, str]] = []
    for vp in points:
        queue = queue_for(vp.spec.training.device, settings)
        try:
            job = store.create(vp.spec.model_dump_json(), name=vp.spec.name, queue=queue,
                               sweep_id=sweep_id, owner=caller.name,
                               max_active=caller.max_queued, tags=tags)
        except QuotaExceeded:
            for job_id, _ in jobs:
                with contextlib.suppress(TrainabilityError):
                    store.finish(job_id, "failed", error="not enqueued: sweep over the key's limit")
            raise
        jobs.append((job.id, queue))
    return jobs


def _cohorts(points: Sequence[ValidatedPoint], jobs: list[tuple[str, str]],
             settings: ServiceSettings) -> list[list[str]]:
    """Each job's cohort (the job ids one worker trains together; ``worker/core/cohorts.py``)."""
    specs = [vp.spec for vp in points]
    memory = [estimate_cost(spec).memory_bytes for spec in specs] if any(
        cohort_key(spec) is not None for spec in specs) else []
    of: list[list[str]] = [[] for _ in jobs]
    for group in cohorts(specs, max_size=settings.sweep_cohort_max, memory_bytes=memory,
                         max_memory_bytes=settings.max_memory_bytes):
        ids = [jobs[i][0] for i in group] if len(group) > 1 else []
        for i in group:
            of[i] = ids
    return of


def _enqueue_all(store: JobStore, dispatcher: JobDispatcher, jobs: list[tuple[str, str]],
                 cohorts_of: list[list[str]]) -> None:
    for n, (job_id, queue) in enumerate(jobs):
        try:
            dispatcher.enqueue(job_id, queue=queue, cohort=cohorts_of[n])
        except BrokerUnavailable as exc:
            for left, _ in jobs[n:]:  # best effort: the 503 is what matters
                with contextlib.suppress(TrainabilityError):
                    store.finish(left, "failed", error=f"not enqueued: {exc}")
            raise


@dataclass
class PointState:
    point: SweepPoint
    job: JobRecord | None  # None: the job record expired


def point_states(store: JobStore, record: SweepRecord) -> list[PointState]:
    states = []
    for point in record.points:
        job = None
        if point.job_ids:
            with contextlib.suppress(JobNotFound):
                job = store.get(point.job_ids[-1])
        states.append(PointState(point=point, job=job))
    return states


def rows_of(states: Iterable[PointState]) -> list[Row]:
    rows = []
    for s in states:
        status = s.job.status if s.job is not None else "expired"
        result = s.job.result if s.job is not None else None
        rows.append(table_row(s.point.index, s.point.values, s.point.job_ids, status, result))
    return rows


def progress_of(rows: list[Row]) -> SweepProgress:
    counts: dict[str, int] = dict.fromkeys(STATUSES, 0)
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    ended = FINAL_STATUSES | {"expired"}
    final = sum(n for status, n in counts.items() if status in ended)
    return SweepProgress(total=len(rows), final=final, by_status=counts, done=final == len(rows))


def summary_of(record: SweepRecord) -> SweepSummary:
    return SweepSummary(
        id=record.id, name=record.name, mode="zip" if record.mode == "zip" else "grid",
        points=len(record.points), varied=varied_columns(record), created_at=record.created_at,
        updated_at=record.updated_at, links=sweep_links(record.id), tags=list(record.tags),
    )


def sweep_view(
    store: JobStore, record: SweepRecord, *, sort: str = "point", order: str = "asc"
) -> SweepPublic:
    """The sweep with its progress and its table sorted by ``sort``."""
    columns = sortable_columns(varied_columns(record))
    if sort not in columns:
        raise InvalidRequest(
            f"cannot sort by {sort!r}; columns: {', '.join(columns)}", field="sort",
            location="query",
        )
    rows = rows_of(point_states(store, record))
    progress = progress_of(rows)
    rows = sort_rows(rows, sort, descending=order == "desc")
    return SweepPublic(
        **summary_of(record).model_dump(),
        base=record.base, axes=record.axes, variants=record.variants, progress=progress,
        sort=sort, order="desc" if order == "desc" else "asc", columns=columns,
        table=[SweepRow.model_validate(row, from_attributes=True) for row in rows],
    )


# --- cancel and re-run ---------------------------------------------------------------------

def cancel_job(store: JobStore, job_id: str) -> bool:
    """Ask a job to stop; False when it had already ended.

    The store's cooperative cancel: a queued job is cancelled at once, a running one is
    flagged and its training loop stops within about a second (``JobStore.request_cancel``).
    """
    try:
        store.request_cancel(job_id)
    except (JobStateConflict, JobNotFound):
        return False
    return True


def cancel_sweep(store: JobStore, record: SweepRecord) -> SweepCancelled:
    cancelled, already_final = [], 0
    for state in point_states(store, record):
        job = state.job
        if job is None or job.is_final or not cancel_job(store, job.id):
            already_final += 1
        else:
            cancelled.append(job.id)
    return SweepCancelled(id=record.id, cancelled=cancelled, already_final=already_final)


def rerun_sweep(
    record: SweepRecord,
    statuses: Iterable[str],
    *,
    settings: ServiceSettings,
    store: JobStore,
    sweeps: SweepStore,
    dispatcher: JobDispatcher,
    caller: Caller = ANONYMOUS,
) -> SweepRerun:
    """A new job for every point whose current job ended in one of ``statuses``."""
    wanted = set(statuses)
    states = [s for s in point_states(store, record)
              if s.job is not None and s.job.status in wanted]
    by_index = {p.index: p for p in expand(record.axes, record.variants,
                                          "zip" if record.mode == "zip" else "grid")}
    chosen = [by_index[s.point.index] for s in states]
    validated = validate_points(record.base, chosen, lambda spec: spec_problems(spec, settings))
    jobs = _record_jobs(store, validated, sweep_id=record.id, settings=settings, caller=caller,
                        tags=record.tags)
    rerun = []
    for state, vp, (job_id, _) in zip(states, validated, jobs, strict=True):
        sweeps.add_job(record.id, vp.point.index, job_id)
        rerun.append(RerunPoint(point=vp.point.index, job_id=job_id,
                                previous_job_id=state.job.id if state.job else None))
    _enqueue_all(store, dispatcher, jobs, _cohorts(validated, jobs, settings))
    return SweepRerun(id=record.id, rerun=rerun)
