"""The worker process's Celery app: the shared configuration plus its task modules and logs.

Workers use the prefork pool with concurrency 1: the child is forked before torch (and CUDA)
is imported, which keeps CUDA working in the child (celery#3402), and prefork is the pool that
enforces time limits. Run ``celery -A worker.runtime.app worker -Q cpu,gpu``.
"""

from __future__ import annotations

from typing import Any

from celery.signals import after_setup_logger, after_setup_task_logger

from worker.core.logs import structure_handlers
from worker.core.settings import get_settings
from worker.jobs.dispatch import make_celery
from worker.runtime.liveness import ForgetReservationsOnConnect, WaitForWarmPool

#: Modules a worker imports at start: the tasks, the signal handlers of the worker liveness
#: beat and of the reaper (both threads in the worker's main process), the set-up of each
#: training process (memory ceiling, warm-up), and the check that training queues and
#: webhook deliveries are never consumed by one worker.
WORKER_MODULES = ("worker.runtime.tasks", "worker.runtime.liveness", "worker.runtime.reaper",
                  "worker.runtime.child", "worker.runtime.queues")


@after_setup_logger.connect
@after_setup_task_logger.connect
def _structured_logs(logger: Any, **_: Any) -> None:
    """Worker logs as key=value or JSON lines carrying the job id (``worker/core/logs.py``)."""
    structure_handlers(logger, get_settings().log_format)


app = make_celery(get_settings(), include=WORKER_MODULES)
app.steps["consumer"].add(ForgetReservationsOnConnect)
app.steps["consumer"].add(WaitForWarmPool)  # takes no job before the pool is warm
