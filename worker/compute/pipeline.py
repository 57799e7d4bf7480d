"""Run one experiment end to end: spec -> data, model, training, probes -> result JSON.

The job's time limit counts from the start, data generation included; training keeps a
reserve before it for the end-of-run analyses, and those that would start past the limit are
skipped (``summary.analyses_skipped``), so a limited job always ends with a partial result
before Celery's soft limit. ``training.seeds`` runs go through ``seeds.py``;
``diagnostics.init_seeds`` repeats the step-0 probes on fresh initializations
(``init_seeds.py``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from worker.compute.data import make_dataset
from worker.compute.evaluation import loss_function
from worker.compute.init_seeds import with_init_seed_agreement
from worker.compute.model import build_model
from worker.compute.results import (  # noqa: F401 - re-exported for the bench and tests
    assemble_diagnostics,
    build_probes,
    environment,
    json_safe,
    member_result,
    spec_hash,
)
from worker.compute.seeds import run_seeds
from worker.compute.training import TrainHooks, train
from worker.core.spec import ExperimentSpec, analyze


class DeviceUnavailable(RuntimeError):
    """The spec asks for a device this worker does not have."""


@dataclass
class RunHooks:
    """What the caller (the Celery task) hears from a run, and the server's time limit."""

    on_progress: Callable[[dict[str, Any]], None] = lambda _p: None
    should_stop: Callable[[], bool] = lambda: False
    time_limit_s: float | None = None  # the server's limit; the spec may ask for less


def resolve_device(request: str) -> torch.device:
    """``auto`` picks CUDA when present; ``cuda`` without a GPU is an error, not a fallback."""
    if request == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda")
    if request == "cuda":
        raise DeviceUnavailable("the spec asks for device 'cuda' but this worker has no GPU")
    return torch.device("cpu")


def job_deadline(spec: ExperimentSpec, hooks: RunHooks) -> float | None:
    """``time.monotonic()`` at which the job's time limit (spec or server) runs out."""
    limits = [t for t in (spec.training.time_limit_s, hooks.time_limit_s) if t is not None]
    return time.monotonic() + min(limits) if limits else None


def run_experiment(spec: ExperimentSpec, hooks: RunHooks | None = None) -> dict[str, Any]:
    """Train the design the spec describes and return the JSON-safe result."""
    hooks = hooks or RunHooks()
    started = time.perf_counter()
    train_hooks = TrainHooks(hooks.on_progress, hooks.should_stop, job_deadline(spec, hooks))
    device = resolve_device(spec.training.device)
    analysis = analyze(spec)
    data = make_dataset(spec.data, spec.training.seed, device)
    if spec.training.seeds:
        result = run_seeds(spec, analysis, data, train_hooks, started)
    else:
        torch.manual_seed(spec.training.seed)
        model = build_model(spec).to(device)
        probes = build_probes(spec, model, data, loss_function(data.shape, spec.training.loss))
        run = train(spec, model, data, probes, train_hooks)
        result = member_result(
            spec, analysis, model, probes, run, data, time.perf_counter() - started
        )
    if spec.diagnostics.init_seeds:
        result = with_init_seed_agreement(spec, result, data, train_hooks.deadline)
    safe: dict[str, Any] = json_safe(result)
    return safe
