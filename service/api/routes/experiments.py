"""``/v1/experiments``: submit a design, poll it, list them."""

from __future__ import annotations

import contextlib
from typing import Annotated

from fastapi import APIRouter, Query, Response

from service.api.deps import DispatcherDep, SettingsDep, StoreDep
from service.schemas import (
    ExperimentAccepted,
    ExperimentCreate,
    ExperimentPublic,
    ExperimentsPage,
    ExperimentSummary,
    links_for,
    problem_responses,
)
from worker.budgets import check_budgets
from worker.celery_app import queue_for
from worker.errors import BrokerUnavailable, TrainabilityError
from worker.jobstore import JobStatus

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])


@router.post(
    "", status_code=202, response_model=ExperimentAccepted, responses=problem_responses(422, 503)
)
def create_experiment(
    spec: ExperimentCreate, response: Response, settings: SettingsDep, store: StoreDep,
    dispatcher: DispatcherDep,
) -> ExperimentAccepted:
    """Submit a design to train and diagnose; poll the ``Location`` for its status and result.

    The spec is validated strictly and checked against the server budgets (422 names the
    field, or the limit with its value). The job is recorded before it is enqueued.
    """
    check_budgets(spec, settings)
    queue = queue_for(spec.training.device, settings)
    job = store.create(spec.model_dump_json(), name=spec.name, queue=queue)
    try:
        dispatcher.enqueue(job.id, queue=queue)
    except BrokerUnavailable as exc:
        with contextlib.suppress(TrainabilityError):  # best effort: the 503 is what matters
            store.finish(job.id, "failed", error=f"not enqueued: {exc}")
        raise
    links = links_for(job.id)
    response.headers["Location"] = links.self
    return ExperimentAccepted(id=job.id, status=job.status, links=links)


@router.get("/{job_id}", response_model=ExperimentPublic, responses=problem_responses(404, 503))
def get_experiment(job_id: str, store: StoreDep) -> ExperimentPublic:
    """Status, progress, timestamps and attempts of an experiment; its result once final."""
    return ExperimentPublic.from_record(store.get(job_id))


@router.get("", response_model=ExperimentsPage, responses=problem_responses(422, 503))
def list_experiments(
    store: StoreDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of a page.")]
    = None,
) -> ExperimentsPage:
    """Experiments, newest first, one page at a time."""
    page = store.list_jobs(status=status, limit=limit, cursor=cursor)
    return ExperimentsPage(
        data=[ExperimentSummary.from_summary(job) for job in page.items],
        next_cursor=page.next_cursor,
    )
