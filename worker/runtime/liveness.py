"""Worker heartbeat: a daemon thread in the Celery main process that beats into the registry.

Connected to Celery's ``worker_ready``/``worker_shutdown`` signals, so it runs in the worker's
main process only (not the prefork child that trains), and keeps beating while a job runs.
Imported by workers through ``WORKER_MODULES`` in ``worker.runtime.app``.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery.signals import worker_ready, worker_shutdown

from worker.core.errors import TrainabilityError
from worker.core.settings import get_settings
from worker.jobs.registry import WorkerRegistry, registry_from_settings

log = logging.getLogger(__name__)


class Heartbeat:
    """Beats every ``interval`` seconds until stopped; Redis hiccups are logged, not fatal."""

    def __init__(self, registry: WorkerRegistry, hostname: str, queues: list[str],
                 interval: float) -> None:
        self._registry = registry
        self._hostname = hostname
        self._queues = queues
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self._interval + 1)
        try:
            self._registry.leave(self._hostname)
        except TrainabilityError as exc:
            log.warning("could not deregister worker %s: %s", self._hostname, exc)

    def _run(self) -> None:
        while True:
            try:
                self._registry.beat(self._hostname, self._queues, os.getpid())
            except TrainabilityError as exc:
                log.warning("worker heartbeat failed: %s", exc)
            if self._stop.wait(self._interval):
                return


_current: Heartbeat | None = None


@worker_ready.connect
def _start_heartbeat(sender: Any, **_: Any) -> None:
    """``sender`` is the worker's consumer: its hostname and the queues it consumes."""
    global _current
    settings = get_settings()
    registry = registry_from_settings(settings)
    queues = sorted(q.name for q in sender.task_consumer.queues)
    _current = Heartbeat(registry, sender.hostname, queues, settings.worker_heartbeat_interval_s)
    _current.start()
    log.info("worker %s ready, consuming %s", sender.hostname, ", ".join(queues))


@worker_shutdown.connect
def _stop_heartbeat(**_: Any) -> None:
    if _current is not None:
        _current.stop()
