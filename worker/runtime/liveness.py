"""Worker liveness: a daemon thread in the Celery main process that beats into the registry.

Connected to Celery's ``worker_ready``/``worker_shutdown`` signals, so it runs in the worker's
main process only (not the prefork child that trains), and keeps beating while a job runs.
Imported by workers through ``WORKER_MODULES`` in ``worker.runtime.app``.

``worker_ready`` (hence the first beat, what ``/readyz`` and the dispatcher count) comes only
once the worker consumes, and a worker whose training processes warm up
(``TRAINABILITY_WORKER_WARMUP``, ``worker.runtime.child``) starts consuming only once each
process of its pool has warmed up (``WaitForWarmPool``): ready means a job submitted now starts
at once, and no job waits seconds in a warming worker while another one is free.

The same process notes each run task it receives (``task_received``: the message is now in
kombu's unacknowledged set) with its node name and pid, the identity it beats under, so the
reaper can tell a message held by a live worker from one held by a dead one
(``worker.jobs.broker.Reservations``). On each broker (re)connection it forgets what it noted
on the connection before (``ForgetReservationsOnConnect``): those messages are no longer held.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import time
from typing import Any

from celery import bootsteps
from celery.concurrency.prefork import TaskPool as PreforkPool
from celery.signals import task_received, worker_ready, worker_shutdown
from celery.worker import state as worker_state

from worker.core.errors import TrainabilityError
from worker.core.settings import get_settings
from worker.jobs.broker import Reservation, Reservations
from worker.jobs.redis_conn import connect
from worker.jobs.registry import WorkerRegistry, registry_from_settings
from worker.jobs.task_message import RUN_EXPERIMENT_TASK
from worker.runtime.child import warm_up_reports
from worker.runtime.periodic import Periodic

_JOB_ID = re.compile(r"[0-9a-f]{32}")

log = logging.getLogger(__name__)


class LivenessBeat:
    """Beats every ``interval`` seconds until stopped; Redis hiccups are logged, not fatal."""

    def __init__(self, registry: WorkerRegistry, hostname: str, queues: list[str],
                 interval: float) -> None:
        self._registry = registry
        self._hostname = hostname
        self._queues = queues
        self._periodic = Periodic("liveness", interval, self.beat, first_call_now=True)

    def beat(self) -> None:
        self._registry.beat(self._hostname, self._queues, os.getpid())

    def start(self) -> None:
        self._periodic.start()

    def stop(self) -> None:
        self._periodic.stop(join_grace_s=1.0)
        try:
            self._registry.leave(self._hostname)
        except TrainabilityError as exc:
            log.warning("could not deregister worker %s: %s", self._hostname, exc)


_current: LivenessBeat | None = None


@worker_ready.connect
def _start_liveness(sender: Any, **_: Any) -> None:
    """``sender`` is the worker's consumer: its hostname and the queues it consumes."""
    global _current
    if _shutting_down():  # a SIGTERM during the warm-up: never ready
        return
    settings = get_settings()
    registry = registry_from_settings(settings)
    queues = sorted(q.name for q in sender.task_consumer.queues)
    _current = LivenessBeat(registry, sender.hostname, queues, settings.liveness_interval_s)
    _current.start()
    log.info("worker %s ready, consuming %s", sender.hostname, ", ".join(queues))


@worker_shutdown.connect
def _stop_liveness(**_: Any) -> None:
    if _current is not None:
        _current.stop()


@functools.cache
def _reservations() -> Reservations:
    settings = get_settings()
    return Reservations(connect(settings), prefix=settings.key_prefix,
                        ttl_s=settings.broker_visibility_timeout_s)


@task_received.connect
def _note_reservation(sender: Any = None, request: Any = None, **_: Any) -> None:
    """A run task reached this worker: note who holds its message (for the reaper)."""
    if request is None or request.name != RUN_EXPERIMENT_TASK:
        return
    found = _JOB_ID.search(str(request.argsrepr or ""))
    tag = getattr(request.message, "delivery_tag", None)
    if found is None or not tag:
        return
    node = getattr(sender, "hostname", None) or request.hostname or "unknown"
    try:
        _reservations().record(str(tag), Reservation(node=node, pid=os.getpid(),
                                                     job_id=found.group()))
    except TrainabilityError as exc:  # the reaper then falls back on the delivery time
        log.warning("reservation of job %s not noted: %s", found.group(), exc)


def forget_own_reservations(node: str, pid: int, reservations: Reservations) -> list[str]:
    """Forget the messages noted as received by worker process ``node``/``pid``; their tags."""
    mine = [tag for tag, who in reservations.all().items() if (who.node, who.pid) == (node, pid)]
    reservations.forget(mine)
    return mine


class ForgetReservationsOnConnect(bootsteps.StartStopStep):
    """Consumer step: on every broker (re)connection, this process holds no message any more.

    When the consumer loses its broker connection, Celery drops each task it received but
    has not started (a delivery tag dies with its channel: ``Consumer.on_close``) and ends
    the running ones (``worker_cancel_long_running_tasks_on_connection_loss``), counting on
    the broker to hand the messages out again. kombu's Redis transport puts them back in
    their queue as the channel closes, except when Redis itself went away: then they stay in
    ``unacked`` until the visibility timeout (2 h), while the reservation noted here told the
    reaper that a live worker still held them, so a queued job waited those 2 h (found by
    ``tests/integration/test_chaos.py``). Forgotten, they are unnoted deliveries, which the
    reaper sends again after ``queued_lost_after_s``. Runs before the consumer takes any
    message on the new connection (the event loop is the last step).
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def start(self, parent: Any) -> None:
        node = getattr(parent, "hostname", None) or "unknown"
        try:
            forgotten = forget_own_reservations(node, os.getpid(), _reservations())
        except TrainabilityError as exc:  # the reaper then waits for the visibility timeout
            log.warning("reservations of %s not forgotten on connecting: %s", node, exc)
            return
        if forgotten:
            log.warning("%d message(s) received on the lost broker connection are no longer "
                        "held here; the reaper sends their jobs again", len(forgotten))


def _pool_pids(pool: PreforkPool) -> list[int]:
    """The pids of the pool's processes now (Celery's own ``inspect stats`` field); none
    while the pool misses one (a lost child not yet replaced) or is closing."""
    try:
        pids = list(pool.info.get("processes") or [])
        return pids if len(pids) >= pool.num_processes else []
    except (AttributeError, TypeError):  # the pool is closing: ``_pool`` is gone
        return []


def _shutting_down() -> bool:
    """Celery's signal handlers (SIGTERM, SIGQUIT, ...) only set these flags, to an exit
    code (0 for a warm shutdown: set, though falsy)."""
    return any(flag is not None and flag is not False
               for flag in (worker_state.should_stop, worker_state.should_terminate))


class WaitForWarmPool(bootsteps.StartStopStep):
    """Consumer step: on the first connection, take no message until each training process
    has warmed up (or ``worker_proc_alive_timeout`` passed, with a warning).

    Celery starts consuming, then sends ``worker_ready``, right after the consumer steps,
    seconds before a fresh training process has imported torch; its first job then sat in the
    worker's main process for the rest of the warm-up while ``/readyz`` counted the worker
    (``bench/bench_first_job.py``). Blocking here, as Celery's own Mingle step does, delays
    both. The children warm up on their own meanwhile and say so through
    ``worker.runtime.child.WarmUpReports``. Only the first start waits, not a reconnection: a
    child respawned later (after a crash) warms up while the worker stays ready, serving
    jobs with its other processes; leaving the registry meanwhile would have the reaper and
    ``/readyz`` take a running worker for a gone one. A worker without warm-up, or without
    training processes (the notifier's thread pool), does not wait.
    """

    requires = ("celery.worker.consumer.tasks:Tasks",)

    def __init__(self, parent: Any, **kwargs: Any) -> None:
        super().__init__(parent, **kwargs)
        self._waited = False

    def start(self, parent: Any) -> None:
        if self._waited:
            return
        self._waited = True
        pool = getattr(parent.controller, "pool", None)
        reports = warm_up_reports()
        if not (get_settings().worker_warmup and isinstance(pool, PreforkPool)
                and reports is not None):
            return
        timeout_s = float(parent.app.conf.worker_proc_alive_timeout)
        began = time.monotonic()
        log.info("worker %s: waiting for its training processes to warm up", parent.hostname)
        if reports.wait_for(lambda: _pool_pids(pool), timeout_s, should_stop=_shutting_down):
            log.info("worker %s: %d training process(es) warmed up after %.1f s",
                     parent.hostname, len(_pool_pids(pool)), time.monotonic() - began)
        elif not _shutting_down():
            log.warning("worker %s: training processes still warming up after %.0f s; "
                        "taking jobs anyway", parent.hostname, timeout_s)
