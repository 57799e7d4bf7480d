"""Worker liveness: a daemon thread in the Celery main process that beats into the registry.

Connected to Celery's ``worker_ready``/``worker_shutdown`` signals, so it runs in the worker's
main process only (not the prefork child that trains), and keeps beating while a job runs.
Imported by workers through ``WORKER_MODULES`` in ``worker.runtime.app``.

The same process notes each run task it receives (``task_received``: the message is now in
kombu's unacknowledged set) with its node name and pid, the identity it beats under, so the
reaper can tell a message held by a live worker from one held by a dead one
(``worker.jobs.broker.Reservations``).
"""

from __future__ import annotations

import functools
import logging
import os
import re
from typing import Any

from celery.signals import task_received, worker_ready, worker_shutdown

from worker.core.errors import TrainabilityError
from worker.core.settings import get_settings
from worker.jobs.broker import Reservation, Reservations
from worker.jobs.dispatch import RUN_EXPERIMENT_TASK
from worker.jobs.redis_conn import connect
from worker.jobs.registry import WorkerRegistry, registry_from_settings
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

