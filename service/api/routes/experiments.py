"""``/v1/experiments``: submit a design, poll it, follow it live, cancel it, list, delete."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import PlainValidator, StringConstraints
from starlette.background import BackgroundTask

from service.api.deps import (
    CallerDep,
    DispatcherDep,
    IntakeDep,
    JobFeedDep,
    SettingsDep,
    StoreDep,
    StreamLimitsDep,
)
from service.schemas.experiment_parts import ExperimentView, FieldsParam
from service.schemas.experiments import (
    ExperimentAccepted,
    ExperimentCreate,
    ExperimentPublic,
    ExperimentsPage,
    ExperimentSummary,
    links_for,
)
from service.schemas.problems import problem_responses
from service.usecases import experiments as usecases
from service.usecases.submissions import read_submission
from worker.jobs.codec import JOB_CURSOR_PATTERN
from worker.jobs.records import MAX_TAGS, SWEEP_ID_RE, TAG_PATTERN, JobStatus

router = APIRouter(prefix="/v1/experiments", tags=["experiments"])

IdempotencyKey = Annotated[str | None, Header(
    alias="Idempotency-Key", min_length=1, max_length=255, pattern=r"^[\x21-\x7e]+$",
    description="Makes the submission safe to retry: the same key with the same body returns "
    "the job it created (200) instead of creating another; with another body it is a 422. "
    "Keys are remembered for idempotency_ttl_s, per API key.",
)]
# Read as plain JSON, so that every error can be reported (service/usecases/submissions.py);
# the document still shows the body as ExperimentCreate.
SubmissionBody = Annotated[
    Any, PlainValidator(lambda raw: raw, json_schema_input_type=ExperimentCreate), Body()
]
TagFilter = Annotated[list[Annotated[str, StringConstraints(pattern=TAG_PATTERN)]] | None, Query(
    max_length=MAX_TAGS, description="Only jobs with this tag (repeat: with every one).",
)]
SweepFilter = Annotated[str | None, Query(
    pattern=SWEEP_ID_RE.pattern, description="Only the jobs of this sweep (its id).",
)]
CreatedAfter = Annotated[datetime | None, Query(
    description="Only jobs created strictly after this time (ISO 8601; UTC without offset).",
)]


@router.post(
    "", status_code=202, response_model=ExperimentAccepted,
    responses={
        200: {"model": ExperimentAccepted,
              "description": "Idempotent replay: the job this Idempotency-Key created."},
        **problem_responses(401, 422, 429, 503),
    },
)
async def create_experiment(
    raw: SubmissionBody, request: Request, response: Response, settings: SettingsDep,
    intake: IntakeDep, caller: CallerDep, idempotency_key: IdempotencyKey = None,
) -> ExperimentAccepted:
    """Submit a design to train and diagnose; poll the ``Location`` for its status and result.

    The spec is validated strictly and checked against the server budgets (422 names the
    field, or the limit with its value): every error at once, like the dry run. Optional
    ``tags`` label the job for listings. The job and its task are written together. With
    auth on, a key over its limit of queued plus running experiments gets a 429. An optional
    ``callback_url`` is called (signed) when the experiment ends.
    """
    # async: the spec's checks (bounded by the budgets) on the event loop, then one awaited
    # Redis script; no thread-pool hop (bench/bench_api.py)
    submission = await usecases.submit_experiment(
        read_submission(raw, settings), settings=settings, intake=intake, caller=caller,
        idempotency_key=idempotency_key,
    )
    job = submission.job
    request.state.job_id = job.id  # on the request's access line (service/live/metrics.py)
    if not submission.created:
        response.status_code = 200
        response.headers["Idempotent-Replayed"] = "true"
    links = links_for(job.id)
    response.headers["Location"] = links.self
    return ExperimentAccepted(id=job.id, status=job.status, links=links)


@router.get("/{job_id}", response_model=ExperimentView,
            responses=problem_responses(401, 404, 422, 503))
async def get_experiment(job_id: str, feed: JobFeedDep, caller: CallerDep,
                         fields: FieldsParam = None) -> ExperimentPublic:
    """Status, progress (with ETA), timestamps and attempts of an experiment; its result once
    final (``?fields=summary,findings``: only those parts of it)."""
    # async, on the live feed's redis.asyncio client: the most frequent request (polling)
    # takes no thread-pool hop (bench/bench_api.py)
    return ExperimentView.of(await usecases.read_experiment(feed, job_id, caller), fields)


@router.get("", response_model=ExperimentsPage, responses=problem_responses(401, 422, 503))
def list_experiments(
    store: StoreDep,
    caller: CallerDep,
    status: Annotated[JobStatus | None, Query(description="Only jobs in this status.")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    cursor: Annotated[str | None, Query(pattern=JOB_CURSOR_PATTERN,
                                        description="next_cursor of a page.")]
    = None,
    tag: TagFilter = None,
    sweep: SweepFilter = None,
    created_after: CreatedAfter = None,
) -> ExperimentsPage:
    """Experiments, newest first, one page at a time (with auth on: the key's own).

    Filters combine: ``status``, ``tag`` (repeatable: every tag), ``sweep``, ``created_after``.
    The cursor is a position: pages of the same filters have no gaps or repeats."""
    page = usecases.list_experiments(
        store, caller, status=status, limit=limit, cursor=cursor, tags=tag or (),
        sweep_id=sweep, created_after=created_after,
    )
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
    job = usecases.cancel_experiment(store, dispatcher, job_id, caller)
    return ExperimentPublic.from_record(job)


@router.delete("/{job_id}", status_code=204, response_class=Response,
               responses=problem_responses(401, 404, 409, 503))
def delete_experiment(job_id: str, store: StoreDep, caller: CallerDep) -> Response:
    """Delete an experiment that has ended (its record and result); 409 while it is queued or
    running (cancel it first)."""
    usecases.delete_experiment(store, job_id, caller)
    return Response(status_code=204)


@router.get(
    "/{job_id}/events", response_class=StreamingResponse,
    responses={
        # each event's schema is filled in by service/api/openapi.py (document_event_streams)
        200: {"content": {"text/event-stream": {}},
              "description": "Server-sent events: status, progress, end (then the stream "
              "closes); comment lines keep the connection alive."},
        **problem_responses(401, 404, 429, 503),
    },
)
async def experiment_events(
    job_id: str, request: Request, feed: JobFeedDep, settings: SettingsDep, caller: CallerDep,
    limits: StreamLimitsDep,
) -> StreamingResponse:
    """Follow an experiment live (``text/event-stream``): a ``status`` event on each status
    change, a ``progress`` event on each progress write (step, loss, ETA), and ``end`` with
    the final state, after which the stream closes. One API key (with auth off, one client
    address) holds at most ``sse_max_streams_per_key`` streams at once: one more is a 429."""
    who = caller.name or f"address {request.client.host if request.client else '?'}"
    slot = limits.acquire(who)
    try:
        stream = await usecases.follow_experiment(
            feed, job_id, caller, heartbeat_s=settings.sse_heartbeat_s,
            poll_s=settings.sse_poll_s,
        )
    except BaseException:
        slot.release()
        raise
    return StreamingResponse(
        slot.guard(stream.events()), media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        background=BackgroundTask(slot.release),  # also when the stream never started
    )
