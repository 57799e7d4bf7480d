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
- **a warm-up report**: at the end of its set-up each child writes its pid into a pipe the main
  process opened before forking the pool (``WarmUpReports``, opened on ``worker_init``); the
  main process takes jobs, and reports ready, only once every process of its pool has
  reported (``worker.runtime.liveness.WaitForWarmPool``): a job submitted then starts at once.
"""

from __future__ import annotations

import logging
import os
import resource
import select
import time
from collections.abc import Callable
from typing import Any

from celery.signals import worker_init, worker_process_init

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


class WarmUpReports:
    """A pipe through which the training processes tell the main process they are set up.

    Opened in the main process before the pool forks, so every child inherits it. A child
    writes its pid (one short line: a single atomic write) when its set-up has ended, warm-up
    included, whether or not the warm-up succeeded. The write end is non-blocking and the
    main process never closes the read end: a child that reports after nobody listens any
    more (a respawn once the worker is ready) fills the pipe at worst and never blocks, and
    never meets EPIPE (a child's SIGPIPE disposition is Celery's business, not ours).
    """

    def __init__(self) -> None:
        self._read, self._write = os.pipe()
        os.set_blocking(self._write, False)
        self._reported: set[int] = set()
        self._partial = b""

    def report(self, pid: int) -> None:
        """In a child: this process has finished its set-up."""
        try:
            os.write(self._write, f"{pid}\n".encode())
        except OSError as exc:  # full: ~8000 unread reports, respawns after the worker's start
            log.debug("warm-up report of process %d not written: %s", pid, exc)

    def wait_for(self, pids: Callable[[], list[int]], timeout_s: float,
                 should_stop: Callable[[], bool] = lambda: False) -> bool:
        """In the main process: until each process in ``pids()`` (the pool's, read again on
        every report, as a child lost while warming up is replaced) has reported. False when
        ``timeout_s`` passed or ``should_stop()`` came true first."""
        deadline = time.monotonic() + timeout_s
        while True:
            current = pids()
            if current and set(current) <= self._reported:
                return True
            left = deadline - time.monotonic()
            if left <= 0 or should_stop():
                return False
            readable, _, _ = select.select([self._read], [], [], min(left, 0.2))
            if readable:
                self._read_reports()

    def _read_reports(self) -> None:
        # a read may end inside a line: its start waits in ``_partial`` for the rest
        *lines, self._partial = (self._partial + os.read(self._read, 4096)).split(b"\n")
        self._reported.update(int(line) for line in lines if line.isdigit())


_reports: WarmUpReports | None = None


def warm_up_reports() -> WarmUpReports | None:
    """The pipe of this worker's children; None outside a worker's main process or child."""
    return _reports


@worker_init.connect
def _open_reports(**_: Any) -> None:
    """In the worker's main process, before its pool forks."""
    global _reports
    _reports = WarmUpReports()


def warm_up(settings: Settings) -> float:
    """Run a tiny job through the real pipeline; the seconds it took, imports included (a
    fresh process spends most of them importing torch and the pipeline)."""
    started = time.perf_counter()
    import torch

    from worker.compute.pipeline import run_experiment
    from worker.core.spec import ExperimentSpec

    if settings.torch_threads is not None:
        torch.set_num_threads(settings.torch_threads)
    run_experiment(ExperimentSpec.model_validate(WARMUP_SPEC))
    return time.perf_counter() - started


@worker_process_init.connect
def _init_child(sender: Any = None, **_: Any) -> None:
    try:
        _set_up_child(get_settings())
    finally:  # whatever happened, the main process must not wait on this child for nothing
        if _reports is not None:
            _reports.report(os.getpid())


def _set_up_child(settings: Settings) -> None:
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
