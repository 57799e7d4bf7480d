"""The job store: the source of truth for job state, as ports (interfaces) over it.

Torch-free; the service and the worker share it. Two ports:

- ``JobStore`` — everything the API, the worker's attempt, the reaper, webhook delivery, the
  MLflow export and ``/metrics`` read and write. Status changes are atomic and checked (final
  states are final; a superseded attempt cannot write; one live lease per job).
- ``JobFeed`` — the asynchronous, read-only view that server-sent event streams wait on: a
  wake-up on each write of a job, and a cheap read of its few small fields.

Callers depend on these and on the records (``worker/jobs/records.py``), never on Redis keys
or hash fields. The adapters are ``worker/jobs/redis_store.py`` (``RedisJobStore``,
``RedisJobFeed``); their key layout and Lua scripts are ``worker/jobs/redis_layout.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from worker.jobs.records import (
    Claim,
    FinalStatus,
    JobPage,
    JobRecord,
    JobStatus,
    LeaseAnswer,
    LiveState,
    ReapOutcome,
    RunningJob,
    StoreSnapshot,
)


class JobStore(Protocol):
    """What the service and the worker need from a job store."""

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers."""

    def redis_time(self) -> float:
        """Now on the store's clock (unix seconds): the clock of ``queued_jobs`` and of the
        ``created_before`` argument."""

    # --- the API: submit, read, list, cancel, delete -------------------------------------

    def create(
        self, spec_json: str, *, name: str | None, queue: str, sweep_id: str | None = None,
        owner: str | None = None, callback_url: str | None = None,
        max_active: int | None = None, tags: Sequence[str] = (),
    ) -> JobRecord:
        """Record a new ``queued`` job and return it (``QuotaExceeded`` over ``max_active``).

        ``tags`` (``TAG_RE``, at most ``MAX_TAGS``) label it for listings. Its task is the
        caller's to send (``JobIntake.submit`` writes both at once)."""

    def create_idempotent(
        self, spec_json: str, *, name: str | None, queue: str, idempotency_key: str,
        fingerprint: str, ttl_s: int, owner: str | None = None,
        callback_url: str | None = None, max_active: int | None = None,
        sweep_id: str | None = None, tags: Sequence[str] = (),
    ) -> tuple[JobRecord, bool]:
        """``create`` once per (owner, key): (the job, whether it was created now).

        The same key with the same ``fingerprint`` returns the job the key created, even while
        that request is still in flight; another fingerprint is ``IdempotencyKeyReused``.
        """

    def get(self, job_id: str) -> JobRecord:
        """The job, or ``JobNotFound``."""

    def list_jobs(
        self, *, status: JobStatus | None = None, limit: int = 20, cursor: str | None = None,
        owner: str | None = None, tags: Sequence[str] = (), sweep_id: str | None = None,
        created_after: datetime | None = None,
    ) -> JobPage:
        """Newest first; ``cursor`` is the previous page's ``next_cursor``. Only the jobs that
        match every filter given: ``status``, ``owner``, each of ``tags``, ``sweep_id``,
        created strictly after ``created_after`` (aware)."""

    def request_cancel(self, job_id: str) -> JobStatus:
        """Flag the job for cancellation; a queued job is cancelled at once. Returns the status
        (``cancelled`` or ``running``); ``JobStateConflict`` when the job is already final."""

    def delete(self, job_id: str) -> None:
        """Delete a final job (``JobStateConflict`` if it is not final)."""

    # --- an attempt (worker/runtime/attempt.py) --------------------------------------------

    def start(self, job_id: str, *, worker: str) -> JobRecord:
        """Mark the job ``running`` for a new attempt (``attempts`` + 1) and return it.

        Low level (no lease, no checks beyond the transition): workers use ``claim``."""

    def claim(
        self, job_id: str, *, worker: str, holder: str, lease_ttl_s: float, max_attempts: int,
        replace: str | None = None,
    ) -> Claim:
        """Start attempt n+1 of the job for ``worker`` and take its lease (``holder|n``).

        Refused, with the reason, when the job is final or gone; when it is ``running`` under
        a live lease other than ``replace`` (``busy``: another attempt runs it, so this is a
        duplicate delivery); when cancellation was asked (the job ends ``cancelled``); or when
        it already had ``max_attempts`` attempts (it ends ``failed``: every worker that ran it
        was lost).
        """

    def renew_lease(
        self, job_id: str, *, attempt: int, lease: str, lease_ttl_s: float
    ) -> LeaseAnswer:
        """Renew the attempt's lease: ``ok``, ``cancel`` (asked to stop) or ``lost``."""

    def lease(self, job_id: str) -> str | None:
        """The live lease of the job ("node|pid|attempt"), if any."""

    def is_cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked to cancel the job."""

    def update_progress(self, job_id: str, progress: dict[str, Any], *, attempt: int) -> bool:
        """Store progress; False when the job is no longer running this attempt."""

    def finish(
        self,
        job_id: str,
        status: FinalStatus,
        *,
        attempt: int | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        progress: dict[str, Any] | None = None,
    ) -> None:
        """Move the job to a final status with its result or error."""

    # --- the reaper (worker/runtime/reaper.py) ---------------------------------------------

    def running_jobs(self) -> list[RunningJob]:
        """Every running job, with whether its lease is alive."""

    def reap(self, job_id: str, *, attempt: int, max_attempts: int, lost_after_s: float,
             worker: str | None = None) -> ReapOutcome:
        """End or re-queue a running attempt whose lease expired (its worker is gone).

        ``requeued`` (back to ``queued``; send its task again) while attempts remain;
        ``failed`` with the reason after ``max_attempts``; ``cancelled`` when cancellation
        was asked. ``alive``/``skip``: the lease came back, or the job moved on.
        """

    def queued_jobs(self, created_before: float | None = None) -> list[tuple[str, str, str]]:
        """Queued jobs (created before ``created_before``, unix seconds on the store's clock):
        (id, queue, queued_ts on the store's clock as stored)."""

    def touch_queued(self, job_id: str, queued_ts: str) -> bool:
        """Mark a queued job as sent again now; False if it moved on since ``queued_ts``."""

    def prune_index(self) -> int:
        """Drop index entries whose job expired; return how many jobs were dropped."""

    def keep_alive(self, job_ids: list[str]) -> int:
        """Give the records of these jobs, while queued or running, and every index and sweep
        that names them, the full retention again (retention counts from the final state);
        return how many were live."""

    # --- webhooks (worker/jobs/webhooks.py) ------------------------------------------------

    def set_webhook_state(self, job_id: str, state: dict[str, Any], *, pending: bool) -> None:
        """Record the delivery state; ``pending`` keeps the job in the outbox."""

    def webhook_outbox(self, idle_for_s: float) -> list[str]:
        """Jobs whose webhook is not done and saw no delivery activity for ``idle_for_s``."""

    # --- MLflow exports (worker/runtime/mlflow_delivery.py) -------------------------------

    def set_mlflow_state(self, job_id: str, state: dict[str, Any], *, pending: bool) -> bool:
        """Record the export state; ``pending`` keeps the job in the exports' outbox. False:
        the job is gone (nothing recorded)."""

    def mlflow_outbox(self, idle_for_s: float) -> list[str]:
        """Jobs whose export is queued or retrying and saw no activity for ``idle_for_s``."""

    # --- metrics ---------------------------------------------------------------------------

    def snapshot(self) -> StoreSnapshot:
        """Jobs per status and the job duration histogram, for ``/metrics``."""


class JobWatch(Protocol):
    """A subscription to the writes of one job (``JobFeed.watch``)."""

    async def wait(self, timeout_s: float) -> bool:
        """True when a write of the job was announced within ``timeout_s``, else False."""

    async def close(self) -> None:
        """End the subscription (idempotent)."""


class JobIntake(Protocol):
    """A submission, asynchronous: the job recorded **and** its run task enqueued, in one
    write (on Redis: the broker's lists are in the store's Redis), or neither."""

    async def submit(
        self, spec_json: str, *, name: str | None, queue: str, owner: str | None = None,
        callback_url: str | None = None, max_active: int | None = None,
        tags: Sequence[str] = (), idempotency: tuple[str, str, int] | None = None,
    ) -> tuple[JobRecord, bool]:
        """``JobStore.create`` plus the task (``create_idempotent`` with ``idempotency``: the
        key, the body's fingerprint, the key's TTL): (the job, whether it was created now;
        a replay enqueues nothing). ``QuotaExceeded``, ``IdempotencyKeyReused``,
        ``StoreUnavailable``."""

    async def close(self) -> None:
        """Release connections."""


class JobFeed(Protocol):
    """The job store as a live event stream sees it: asynchronous, read-only, woken by writes.

    An announcement may be lost (the store restarted meanwhile): readers also re-read on a
    timer. Errors are domain errors (``StoreUnavailable``, ``JobStoreError``).
    """

    async def watch(self, job_id: str) -> JobWatch:
        """Subscribe to the job's writes. Subscribe *before* the first ``live_state`` read, so
        that no write falls in between."""

    async def live_state(self, job_id: str) -> LiveState | None:
        """The job's few small fields (no spec, no result); None when there is no such job."""

    async def job(self, job_id: str) -> JobRecord:
        """The job's whole record, as ``JobStore.get`` reads it (``JobNotFound`` when there is
        none), without a thread: the API's GET of a job reads it on the event loop."""

    async def result(self, job_id: str) -> dict[str, Any] | None:
        """The job's stored result (None before one is written)."""

    async def close(self) -> None:
        """Release connections."""
