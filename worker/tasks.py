"""Celery tasks: thin wrappers that hand a job id to ``worker.execution``.

torch is imported inside the task body, in the prefork child, never at module import: the
worker's main process (which forks the children) must not initialize CUDA (celery#3402).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from celery import Task

from worker.celery_app import RUN_EXPERIMENT_TASK, app
from worker.errors import StoreUnavailable
from worker.execution import ProgressFn, StopFn, execute_job
from worker.jobstore import JobStore, store_from_settings
from worker.settings import get_settings
from worker.spec import ExperimentSpec


@lru_cache(maxsize=1)
def job_store() -> JobStore:
    """One store (and connection pool) per process, created after the fork."""
    return store_from_settings(get_settings())


def run_with_torch(spec: ExperimentSpec, on_progress: ProgressFn,
                   should_stop: StopFn) -> dict[str, Any]:
    """The compute side (imports torch on first use, in the worker child)."""
    import torch

    from worker.runner import RunHooks, run_experiment

    settings = get_settings()
    if settings.torch_threads is not None:
        torch.set_num_threads(settings.torch_threads)
    hooks = RunHooks(on_progress=on_progress, should_stop=should_stop,
                     time_limit_s=settings.job_time_limit_s)
    return run_experiment(spec, hooks)


# Redis blips while recording are retried (the job restarts as a new attempt); failures of
# the run itself are recorded on the job by execute_job and never reach Celery.
@app.task(name=RUN_EXPERIMENT_TASK, bind=True, autoretry_for=(StoreUnavailable,),
          retry_backoff=2, retry_backoff_max=60, max_retries=5)
def run_experiment_task(self: Task[[str], None], job_id: str) -> None:
    """Run the experiment recorded under ``job_id``."""
    settings = get_settings()
    execute_job(
        job_store(), job_id,
        worker=self.request.hostname or "unknown",
        run=run_with_torch,
        progress_interval_s=settings.progress_interval_s,
        time_limit_s=settings.job_soft_time_limit_s,
    )
