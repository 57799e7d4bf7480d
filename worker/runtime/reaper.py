"""The reaper: no job stays ``running`` after its worker died, no ``queued`` job is forgotten.

One pass (``Reaper.run_once``):

1. **Lost attempts.** A running job whose lease expired (no heartbeat from its attempt for
   ``lease_ttl_s``: worker SIGKILLed, OOM, host gone, frozen) is put back to ``queued``
   and its task sent again, while it has had fewer than ``max_attempts`` attempts; after that
   it ends ``failed`` with the reason. A lost attempt of a job whose cancellation was asked
   ends ``cancelled``. (A prefork *child* killed mid-job is faster: Celery requeues its message
   at once, ``task_reject_on_worker_lost``, and the next attempt takes over the dead lease;
   see ``worker/runtime/attempt.py``.)
2. **Lost messages.** A job ``queued`` for longer than ``queued_lost_after_s`` whose task is in
   no broker list (neither waiting in its queue nor reserved by a live worker) had its message
   lost: a Redis crash between AOF fsyncs, a flushed list, or a worker that reserved it (the
   message sits in kombu's ``unacked`` until the 2 h visibility timeout) and died before
   claiming it. A reserved message counts as held only while the worker process that received
   it (``worker.jobs.broker.Reservations``) is in the worker registry; one that no process
   noted counts as held for ``queued_lost_after_s`` after its delivery. A lost job is sent
   again, and a dead worker's copy is taken out of ``unacked``. Tasks are idempotent on the
   job id (the lease), so a message that was merely hard to see costs nothing.
3. **Quiet webhooks and exports.** Final jobs whose webhook delivery or MLflow export went
   quiet (the worker delivering it died, or the export could not be queued) are sent again
   (at-least-once).
4. **Live records kept.** Every queued and running job's record, and the indexes and sweep
   that name it, get the full retention TTL again (every ``retention_seconds / 8``): retention
   counts from the final state, so a job that waits in a queue longer than the retention
   period is still there when it runs.
5. **Listing indexes** are swept of expired ids every ``prune_interval_s``.

Where it runs: a thread in the main process of **every** Celery worker (started on
``worker_ready``), next to the worker heartbeat; a lock in Redis lets one of them reap per
interval. So no extra process has to be deployed or kept alive (no Celery beat): wherever a
worker can run jobs, lost jobs are found. The reaper needs only Redis and the broker, never
torch.
"""

from __future__ import annotations

import logging
import math
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

import redis
from celery.signals import worker_ready, worker_shutdown

from worker.core.errors import JobNotFound, TrainabilityError
from worker.core.settings import Settings, get_settings
from worker.jobs.broker import (
    UNACKED_KEY,
    Reservations,
    drop_unacked,
    unacked_deliveries,
)
from worker.jobs.dispatch import CeleryDispatcher, make_celery
from worker.jobs.redis_conn import translate_redis_errors
from worker.jobs.redis_store import RedisJobStore, store_from_settings
from worker.jobs.registry import RedisWorkerRegistry, WorkerRegistry
from worker.runtime.periodic import Periodic

log = logging.getLogger(__name__)

_JOB_ID_IN_MESSAGE = re.compile(r"(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])")
_LIST_CHUNK = 1000


class Dispatcher(Protocol):
    def enqueue(self, job_id: str, *, queue: str, cohort: Sequence[str] = ()) -> None: ...

    def send_webhook(self, job_id: str) -> None: ...

    def send_mlflow_export(self, job_id: str) -> None: ...


@dataclass
class ReapReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)
    webhooks: list[str] = field(default_factory=list)
    exports: list[str] = field(default_factory=list)
    pruned: int = 0
    kept_alive: int = 0

    def __bool__(self) -> bool:
        return bool(self.requeued or self.failed or self.cancelled or self.resent
                    or self.webhooks or self.exports or self.pruned)


def _job_ids(raw: str) -> list[str]:
    return _JOB_ID_IN_MESSAGE.findall(raw)


def job_ids_waiting(client: redis.Redis, queues: Iterable[str]) -> set[str]:
    """Job ids of the run tasks waiting in ``queues``.

    Reads the raw messages: the job id is the task's argument and appears in clear in the
    message headers (``argsrepr``); a sweep cohort's ids (``kwargsrepr``) count as waiting
    too, since that task claims whichever of them are still queued; task and delivery ids
    are dashed UUIDs, which the pattern does not match.
    """
    found: set[str] = set()
    with translate_redis_errors():
        for queue in queues:
            start = 0
            while True:
                chunk = cast(list[str], client.lrange(queue, start, start + _LIST_CHUNK - 1))
                for raw in chunk:
                    found.update(_job_ids(raw))
                if len(chunk) < _LIST_CHUNK:
                    break
                start += len(chunk)
    return found


def job_ids_unacked(client: redis.Redis) -> dict[str, list[str]]:
    """Job id -> delivery tags of its messages reserved by workers (kombu's ``unacked``)."""
    held: dict[str, list[str]] = {}
    with translate_redis_errors():
        for tag, raw in client.hscan_iter(UNACKED_KEY, count=500):
            for job_id in _job_ids(cast(str, raw)):
                held.setdefault(job_id, []).append(cast(str, tag))
    return held


def job_ids_in_broker(client: redis.Redis, queues: Iterable[str]) -> set[str]:
    """Job ids of the run tasks waiting in ``queues`` or reserved by a worker (``unacked``)."""
    return job_ids_waiting(client, queues) | set(job_ids_unacked(client))


class Reaper:
    """One reaper pass at a time; see the module docstring."""

    def __init__(self, store: RedisJobStore, dispatcher: Dispatcher, settings: Settings,
                 registry: WorkerRegistry | None = None) -> None:
        self._store = store
        self._dispatcher = dispatcher
        self._settings = settings
        self._registry = registry or RedisWorkerRegistry(
            store.client, prefix=settings.key_prefix, ttl_seconds=settings.liveness_ttl_s)
        self._reservations = Reservations(store.client, prefix=settings.key_prefix,
                                          ttl_s=settings.broker_visibility_timeout_s)
        self._last_prune = time.monotonic()
        self._last_keep_alive = -math.inf

    def webhook_idle_s(self) -> float:
        """A delivery with no activity for this long is taken as lost (beyond any backoff)."""
        s = self._settings
        return max(3.0 * s.webhook_retry_backoff_max_s + s.webhook_deadline_s, 60.0)

    def export_idle_s(self) -> float:
        """An MLflow export with no activity for this long is taken as lost."""
        s = self._settings
        return max(3.0 * s.webhook_retry_backoff_max_s + s.mlflow_timeout_s, 60.0)

    def run_once(self, *, prune: bool | None = None,
                 keep_alive: bool | None = None) -> ReapReport:
        report = ReapReport()
        self._lost_attempts(report)
        self._lost_messages(report)
        self._quiet_webhooks(report)
        self._quiet_exports(report)
        due = (time.monotonic() - self._last_keep_alive
               >= self._settings.retention_seconds / 8)
        if keep_alive or (keep_alive is None and due):
            self._last_keep_alive = time.monotonic()
            live = [job.id for job in self._store.running_jobs()]
            live += [job_id for job_id, _, _ in self._store.queued_jobs()]
            report.kept_alive = self._store.keep_alive(live)
        due = time.monotonic() - self._last_prune >= self._settings.prune_interval_s
        if prune or (prune is None and due):
            self._last_prune = time.monotonic()
            report.pruned = self._store.prune_index()
        return report

    def _lost_attempts(self, report: ReapReport) -> None:
        s = self._settings
        for job in self._store.running_jobs():
            if job.lease_alive:
                continue
            outcome = self._store.reap(
                job.id, attempt=job.attempt, max_attempts=s.max_attempts,
                lost_after_s=s.lease_ttl_s, worker=job.worker,
            )
            if outcome == "requeued":
                log.warning("job %s: attempt %d on %s was lost; re-queued", job.id, job.attempt,
                            job.worker, extra={"job_id": job.id})
                report.requeued.append(job.id)
                self._send(job.id, job.queue)
            elif outcome in ("failed", "cancelled"):
                log.error("job %s: attempt %d on %s was lost; %s", job.id, job.attempt,
                          job.worker, outcome, extra={"job_id": job.id})
                (report.failed if outcome == "failed" else report.cancelled).append(job.id)
                self._announce(job.id)

    def _lost_messages(self, report: ReapReport) -> None:
        # Only jobs created before the threshold can have waited that long (the index score
        # is the creation time): a large fresh backlog costs nothing here.
        lost_after = self._settings.queued_lost_after_s
        now = self._store.redis_time()
        queued = self._store.queued_jobs(created_before=now - lost_after)
        stale = [(job_id, queue, ts) for job_id, queue, ts in queued
                 if now - float(ts) > lost_after]
        # Read who reserved what before what is reserved: a tag acked in between then looks
        # acked (forgotten below), never reserved by nobody.
        reservations = self._reservations.all()
        delivered = unacked_deliveries(self._store.client)
        self._reservations.forget([tag for tag in reservations if tag not in delivered])
        if not stale:
            return
        waiting = job_ids_waiting(self._store.client, {queue for _, queue, _ in stale})
        held = job_ids_unacked(self._store.client)
        alive = {(w.hostname, w.pid) for w in self._registry.live_workers()}

        def dead(tag: str) -> bool:
            """The message's holder is gone (or, unnoted, it was delivered long ago)."""
            who = reservations.get(tag)
            if who is not None:
                return (who.node, who.pid) not in alive
            return time.time() - delivered.get(tag, time.time()) > lost_after

        for job_id, queue, ts in stale:
            tags = held.get(job_id, [])
            if job_id in waiting or not all(dead(tag) for tag in tags):
                continue
            if not self._store.touch_queued(job_id, ts):
                continue
            why = (f"its message is held by a worker that is gone ({len(tags)} delivery)"
                   if tags else "its task is in no broker list")
            log.warning("job %s: queued for %.0f s and %s; sending it again", job_id,
                        now - float(ts), why, extra={"job_id": job_id})
            report.resent.append(job_id)
            self._send(job_id, queue)
            drop_unacked(self._store.client, tags)
            self._reservations.forget(tags)

    def _quiet_webhooks(self, report: ReapReport) -> None:
        for job_id in self._store.webhook_outbox(self.webhook_idle_s()):
            report.webhooks.append(job_id)
            self._announce(job_id)

    def _quiet_exports(self, report: ReapReport) -> None:
        for job_id in self._store.mlflow_outbox(self.export_idle_s()):
            try:
                state = self._store.get(job_id).mlflow or {"state": "queued"}
                # re-arms the idle clock: sent once per idle period, not once per pass
                if self._store.set_mlflow_state(job_id, state, pending=True):
                    report.exports.append(job_id)
                    self._dispatcher.send_mlflow_export(job_id)
            except JobNotFound:
                self._store.set_mlflow_state(job_id, {}, pending=False)  # leaves the outbox
            except TrainabilityError as exc:
                log.warning("MLflow export of job %s not queued: %s", job_id, exc,
                            extra={"job_id": job_id})

    def _send(self, job_id: str, queue: str) -> None:
        try:
            self._dispatcher.enqueue(job_id, queue=queue)
        except TrainabilityError as exc:  # still queued: the next pass finds it missing
            log.warning("job %s not re-sent: %s", job_id, exc, extra={"job_id": job_id})

    def _announce(self, job_id: str) -> None:
        try:
            if self._store.get(job_id).callback_url:
                self._dispatcher.send_webhook(job_id)
        except TrainabilityError as exc:
            log.warning("webhook of job %s not queued: %s", job_id, exc,
                        extra={"job_id": job_id})


class ReaperThread:
    """Runs ``Reaper.run_once`` every ``interval_s`` while this process holds the lock."""

    def __init__(self, reaper: Reaper, client: redis.Redis, lock_key: str, node: str,
                 interval_s: float) -> None:
        self._reaper = reaper
        self._client = client
        self._lock_key = lock_key
        self._node = node
        self._interval = interval_s
        self._periodic = Periodic("reaper", interval_s, self._pass)

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop()

    def leads(self) -> bool:
        """Take (or keep) the reaper lock for one interval; only its holder reaps."""
        ms = max(int(self._interval * 1000) - 50, 100)
        with translate_redis_errors():
            if self._client.set(self._lock_key, self._node, nx=True, px=ms):
                return True
            return bool(self._client.get(self._lock_key) == self._node
                        and self._client.pexpire(self._lock_key, ms))

    def _pass(self) -> None:
        if not self.leads():
            return
        report = self._reaper.run_once()
        if report:
            log.info("reaper: requeued=%d failed=%d cancelled=%d resent=%d "
                     "webhooks=%d exports=%d pruned=%d", len(report.requeued),
                     len(report.failed), len(report.cancelled), len(report.resent),
                     len(report.webhooks), len(report.exports), report.pruned)


_current: ReaperThread | None = None


@worker_ready.connect
def _start_reaper(sender: Any, **_: Any) -> None:
    global _current
    settings = get_settings()
    store = store_from_settings(settings)
    # Its own Celery app (and connections) for sending: not the consumer's.
    dispatcher = CeleryDispatcher(make_celery(settings))
    _current = ReaperThread(
        Reaper(store, dispatcher, settings), store.client, f"{settings.key_prefix}:reaper:lock",
        sender.hostname, settings.reaper_interval_s,
    )
    _current.start()


@worker_shutdown.connect
def _stop_reaper(**_: Any) -> None:
    if _current is not None:
        _current.stop()
