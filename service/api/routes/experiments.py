"""``/v1/experiments``: submit a design, poll it, follow it live, cancel it, list, delete."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse

from service.api.deps import CallerDep, DispatcherDep, SettingsDep, StoreDep
from service.auth import Caller
from service.live.events import ExperimentEvents
from service.schemas.experiments import (
    ExperimentAccepted,
    ExperimentCreate,
    ExperimentPublic,
    ExperimentsPage,
    ExperimentSummary,
    links_for,
    problem_responses,
)
from worker.core.budgets import check_budgets
from worker.core.errors import BrokerUnavailable, JobNotFound, TrainabilityError
from worker.jobs.dispatch import queue_for
from worker.jobs.store import JobRecord, JobStatus, JobStore, RedisJobStore
from worker.jobs.webhooks import check_callback_url

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$",
    description="Makes the submission safe to retry: the same key with the same body returns "
    "the job it created (200) instead of creating another; with another body it is a 422. "
    "Keys are remembered for idempotency_ttl_s, per API key.",
)]


def _owned(store: JobStore, job_id: str, caller: Caller) -> JobRecord:
    return caller.check_owns(store.get(job_id))


@router.post(
    "", status_code=202, response_model=ExperimentAccepted,
    responses={
        200: {"model": ExperimentAccepted,
              "description": "Idempotent replay: the job this Idempotency-Key created."},
        **problem_responses(401, 422, 429, 503),
    },
)
def create_experiment(
    body: ExperimentCreate, response: Response, settings: SettingsDep, store: StoreDep,
    dispatcher: DispatcherDep, caller: CallerDep, idempotency_key: IdempotencyKey = None,
) -> ExperimentAccepted:
    """Submit a design to train and diagnose; poll the ``Location`` for its status and result.

    The spec is validated strictly and checked against the server budgets (422 names the
    field, or the limit with its value). The job is recorded before it is enqueued. With
    auth on, a key over its limit of queued plus running experiments gets a 429. An optional
    ``callback_url`` is called (signed) when the experiment ends.
    """
    check_budgets(body, settings)
    if body.callback_url is not None:
        check_callback_url(body.callback_url, settings.webhook_allowlist)
    queue = queue_for(body.training.device, settings)
    fields: dict[str, Any] = {
        "name": body.name, "queue": queue, "owner": caller.name,
        "callback_url": body.callback_url, "max_active": caller.max_queued,
    }
    if idempotency_key is None:
        job, created = store.create(body.spec_json(), **fields), True
    else:
        fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        job, created = store.create_idempotent(
            body.spec_json(), idempotency_key=idempotency_key, fingerprint=fingerprint,
            ttl_s=settings.idempotency_ttl_s, **fields,
        )
    if created:
        try:
            dispatcher.enqueue(job.id, queue=queue)
        except BrokerUnavailable as exc:
            with contextlib.suppress(TrainabilityError):  # best effort: the 503 is what matters
                store.finish(job.id, "failed", error=f"not enqueued: {exc}")
            if idempotency_key is not None:  # a retry with this key must be able to succeed
                with contextlib.suppress(TrainabilityError):
                    store.forget_idempotency_key(caller.name, idempotency_key)
            raise
        log.info("experiment submitted to %s", queue, extra={"job_id": job.id})
    else:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    links = links_for(job.id)
    response.headers["Location"] = links.self
    return ExperimentAccepted(id=job.id, status=job.status, links=links)


@router.get("/{job_id}", response_model=ExperimentPublic,
            responses=problem_responses(401, 404, 503))
def get_experiment(job_id: str, store: StoreDep, caller: CallerDep) -> ExperimentPublic:
    """Status, progress (with ETA), timestamps and attempts of an experiment; its result once
    final."""
    return ExperimentPublic.from_record(_owned(store, job_id, caller))


@router.get("", response_model=ExperimentsPage, responses=problem_responses(401, 422, 503))
def list_experiments(
    store: StoreDep,
    caller: CallerDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(max_length=200, description="next_cursor of a page.")]
    = None,
) -> ExperimentsPage:
    """Experiments, newest first, one page at a time (with auth on: the key's own)."""
    page = store.list_jobs(status=status, limit=limit, cursor=cursor, owner=caller.name)
    return ExperimentsPage(
        data=[ExperimentSummary.from_summary(job) for job in page.items],
        next_cursor=page.next_cursor,
    )


@router.post("/{job_id}/cancel", status_code=202, response_model=ExperimentPublic,
             responses=problem_responses(401, 404, 409, 503))
def cancel_experiment(
    job_id: str, store: StoreDep, dispatcher: DispatcherDep, caller: CallerDep,
) -> ExperimentPublic:
    """Cancel an experiment: a queued one ends ``cancelled`` at once and never runs; a running
    one stops at its next check (within about a second of training) and ends ``cancelled``
    with its partial result. The flag lives in the job record, so it survives worker
    restarts. 409 if the experiment has already ended."""
    _owned(store, job_id, caller)
    status = store.request_cancel(job_id)
    job = store.get(job_id)
    log.info("cancel requested (now %s)", status, extra={"job_id": job_id})
    if status == "cancelled" and job.callback_url:
        with contextlib.suppress(TrainabilityError):  # the reaper resends from the outbox
            dispatcher.send_webhook(job_id)
    return ExperimentPublic.from_record(job)


@router.delete("/{job_id}", status_code=204, response_class=Response,
               responses=problem_responses(401, 404, 409, 503))
def delete_experiment(job_id: str, store: StoreDep, caller: CallerDep) -> Response:
    """Delete an experiment that has ended (its record and result); 409 while it is queued or
    running (cancel it first)."""
    _owned(store, job_id, caller)
    store.delete(job_id)
    log.info("experiment deleted", extra={"job_id": job_id})
    return Response(status_code=204)


@router.get(
    "/{job_id}/events", response_class=StreamingResponse,
    responses={
        200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
              "description": "Server-sent events: status, progress, end (then the stream "
              "closes); comment lines keep the connection alive."},
        **problem_responses(401, 404, 503),
    },
)
async def experiment_events(
    job_id: str, request: Request, store: StoreDep, settings: SettingsDep, caller: CallerDep,
) -> StreamingResponse:
    """Follow an experiment live (``text/event-stream``): a ``status`` event on each status
    change, a ``progress`` event on each progress write (step, loss, ETA), and ``end`` with
    the final state, after which the stream closes."""
    if not isinstance(store, RedisJobStore):
        raise TypeError("server-sent events need the Redis job store")
    stream = ExperimentEvents(
        request.app.state.async_redis, store, job_id,
        heartbeat_s=settings.sse_heartbeat_s, poll_s=settings.sse_poll_s,
    )
    first = await stream.open()
    if caller.name is not None and first.get("owner") != caller.name:
        await stream.close()
        raise JobNotFound(job_id)
    return StreamingResponse(
        stream.events(), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
