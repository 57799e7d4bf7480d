"""Setting up each prefork child (the process that trains) before it takes a job.

Connected to Celery's ``worker_process_init``, so it runs in every child after the fork and
never in the worker's main process (which must not import torch or initialize CUDA,
celery#3402):

- **a memory ceiling** (``RLIMIT_AS``, ``TRAINABILITY_WORKER_MEMORY_FRACTION`` of the host's
  memory shared among the children): a design that allocates more than the dry run promised
  fails its own job with ``MemoryError`` (recorded as ``failed``, with the reason) instead of
  waking the kernel's OOM killer, which may pick Redis or the API on a shared host. Not set on
  GPU workers (``CUDA_VISIBLE_DEVICES``): CUDA reserves far more address space than it uses.
- **warm code paths**: torch, the pipeline and every probe a default job runs are imported and
  exercised once on a tiny CPU model (``TRAINABILITY_WORKER_WARMUP``), so a fresh worker's first
  job costs what its second does.
"""

from __future__ import annotations

import logging
import os
import resource
import time
from typing import Any

from celery.signals import worker_process_init

from worker.core.settings import Settings, get_settings

log = logging.getLogger(__name__)

WARMUP_SPEC = {
    "spec_version": 1,
    "model": {"family": "mlp", "depth": 2, "width": 8},
    "data": {"kind": "spirals", "n_train": 64, "n_val": 16},
    "training": {"steps": 4, "batch_size": 16, "device": "cpu"},
}


def host_memory_bytes() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def memory_ceiling(settings: Settings, children: int) -> int | None:
    """Bytes of address space one child may use, or None when no ceiling applies."""
    if settings.worker_memory_fraction <= 0 or os.environ.get("CUDA_VISIBLE_DEVICES"):
        return None
    return int(settings.worker_memory_fraction * host_memory_bytes() / max(children, 1))


def set_memory_ceiling(limit: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def warm_up(settings: Settings) -> float:
    """Run a tiny job through the real pipeline; the seconds it took."""
    import torch

    from worker.compute.pipeline import run_experiment
    from worker.core.spec import ExperimentSpec

    if settings.torch_threads is not None:
        torch.set_num_threads(settings.torch_threads)
    started = time.perf_counter()
    run_experiment(ExperimentSpec.model_validate(WARMUP_SPEC))
    return time.perf_counter() - started


@worker_process_init.connect
def _init_child(sender: Any = None, **_: Any) -> None:
    settings = get_settings()
    children = int(os.environ.get("TRAINABILITY_WORKER_CHILDREN", "1"))
    limit = memory_ceiling(settings, children)
    if limit is not None:
        set_memory_ceiling(limit)
        log.info("training process %d: address space limited to %.1f GiB", os.getpid(),
                 limit / 2**30)
    if settings.worker_warmup:
        try:
            log.info("training process %d warmed up in %.2f s", os.getpid(), warm_up(settings))
        except Exception:  # a failed warm-up must not keep the child from serving jobs
            log.exception("warm-up failed; the first job pays for imports")
