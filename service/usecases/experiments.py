"""Experiment operations behind ``/v1/experiments``: plain functions over the job store.

Each takes the store (and the dispatcher, settings, caller it needs), returns records, and
raises domain errors (``worker.core.errors``); the routes turn those into schemas and HTTP.
With auth on, another key's job is ``JobNotFound`` everywhere, exactly like an unknown id.

Submitting writes the job record and its task in one Redis script: a Redis that is down is a
503 with nothing written, so a retry (with the same Idempotency-Key too) can succeed.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from service.auth import Caller
from service.live.events import ExperimentEvents
from service.schemas.experiments import ExperimentCreate
from service.settings import ServiceSettings
from worker.core.errors import JobNotFound, TrainabilityError
from worker.jobs.dispatch import JobDispatcher, queue_for
from worker.jobs.records import JobPage, JobRecord, JobStatus
from worker.jobs.store import JobFeed, JobIntake, JobStore
from worker.jobs.webhooks import check_callback_url

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Submission:
    """A submitted job, and whether this call created it (False: an idempotent replay)."""

    job: JobRecord
    created: bool


async def submit_experiment(
    body: ExperimentCreate,
    *,
    settings: ServiceSettings,
    intake: JobIntake,
    caller: Caller,
    idempotency_key: str | None = None,
) -> Submission:
    """Check the callback against the allowlist, then record the job and enqueue its task in
    one write (once per Idempotency-Key). ``body`` is as ``read_submission`` returns it:
    schema-valid and within the budgets (checked there, once, with every other problem of
    the spec)."""
    if body.callback_url is not None:
        check_callback_url(body.callback_url, settings.webhook_allowlist)
    idempotency = None
    if idempotency_key is not None:
        fingerprint = hashlib.sha256(body.model_dump_json().encode()).hexdigest()
        idempotency = (idempotency_key, fingerprint, settings.idempotency_ttl_s)
    job, created = await intake.submit(
        body.spec_json(), name=body.name, queue=queue_for(body.training.device, settings),
        owner=caller.name, callback_url=body.callback_url, max_active=caller.max_queued,
        tags=body.tags, idempotency=idempotency,
    )
    return Submission(job=job, created=created)


def get_experiment(store: JobStore, job_id: str, caller: Caller) -> JobRecord:
    """The caller's job, or ``JobNotFound``."""
    return caller.check_owns(store.get(job_id))


async def read_experiment(feed: JobFeed, job_id: str, caller: Caller) -> JobRecord:
    """``get_experiment`` on the event loop (no thread hop): the GET route's read."""
    return caller.check_owns(await feed.job(job_id))


def list_experiments(
    store: JobStore, caller: Caller, *, status: JobStatus | None = None, limit: int = 20,
    cursor: str | None = None, tags: Sequence[str] = (), sweep_id: str | None = None,
    created_after: datetime | None = None,
) -> JobPage:
    """The caller's jobs (every job with auth off), newest first, one page, with every filter
    given (``tags``: each of them; ``created_after``: strictly, UTC when naive)."""
    if created_after is not None and created_after.tzinfo is None:
        created_after = created_after.replace(tzinfo=UTC)
    return store.list_jobs(status=status, limit=limit, cursor=cursor, owner=caller.name,
                           tags=tags, sweep_id=sweep_id, created_after=created_after)


def cancel_experiment(
    store: JobStore, dispatcher: JobDispatcher, job_id: str, caller: Caller
) -> JobRecord:
    """Ask the job to stop (a queued one is cancelled at once); the job as it is now.

    ``JobStateConflict`` when it has already ended. A job cancelled here and now that has a
    callback_url gets its webhook queued (best effort: the reaper resends from the outbox).
    """
    get_experiment(store, job_id, caller)
    status = store.request_cancel(job_id)
    job = store.get(job_id)
    log.info("cancel requested (now %s)", status, extra={"job_id": job_id})
    if status == "cancelled" and job.callback_url:
        with contextlib.suppress(TrainabilityError):
            dispatcher.send_webhook(job_id)
    return job


def delete_experiment(store: JobStore, job_id: str, caller: Caller) -> None:
    """Delete a final job; ``JobStateConflict`` while it is queued or running."""
    get_experiment(store, job_id, caller)
    store.delete(job_id)
    log.info("experiment deleted", extra={"job_id": job_id})


async def follow_experiment(
    feed: JobFeed, job_id: str, caller: Caller, *, heartbeat_s: float, poll_s: float
) -> ExperimentEvents:
    """The job's open event stream (subscribed, first state read), or ``JobNotFound``."""
    stream = ExperimentEvents(feed, job_id, heartbeat_s=heartbeat_s, poll_s=poll_s)
    first = await stream.open()
    if caller.name is not None and first.owner != caller.name:
        await stream.close()
        raise JobNotFound(job_id)
    return stream
