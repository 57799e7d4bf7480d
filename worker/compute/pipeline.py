"""Run one experiment end to end: spec -> data, model, training, probes -> result JSON."""

from __future__ import annotations

import hashlib
import math
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch

from worker.compute.data import Dataset, make_dataset
from worker.compute.diagnostics.base import ReportContext
from worker.compute.diagnostics.probes import ProbeSet, probe_steps
from worker.compute.diagnostics.registry import build_diagnostics
from worker.compute.model import Net, build_model
from worker.compute.training import (
    LossFn,
    TrainHooks,
    TrainOutcome,
    baseline_loss,
    evaluate,
    loss_function,
    train,
    uses_cross_entropy,
)
from worker.core.diagnostic_groups import SECTIONS
from worker.core.findings import findings, headline
from worker.core.spec import ExperimentSpec, analyze, total_steps


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


def spec_hash(spec: ExperimentSpec) -> str:
    """SHA-256 of the spec's canonical JSON (same design, same hash)."""
    return hashlib.sha256(spec.model_dump_json().encode()).hexdigest()


def build_probes(
    spec: ExperimentSpec, model: Net, data: Dataset, loss_fn: LossFn
) -> ProbeSet | None:
    """The probe diagnostics the spec's preset and switches turn on (None: no probes)."""
    d = spec.diagnostics
    seed = spec.training.seed
    diagnostics = build_diagnostics(spec, model)
    if not diagnostics:
        return None
    # A fixed probe batch from the training set, drawn with its own seeded stream.
    g = torch.Generator().manual_seed(seed + 1)
    idx = torch.randperm(data.x_train.shape[0], generator=g)[: d.probe_batch_size]
    idx = idx.to(data.x_train.device)
    return ProbeSet(
        diagnostics=diagnostics,
        steps=probe_steps(total_steps(spec), d.every),
        x=data.x_train[idx],
        y=data.y_train[idx],
        loss_fn=loss_fn,
        train_x=data.x_train,
        total_steps=total_steps(spec),
        lr=spec.optimizer.lr,
        momentum=spec.optimizer.momentum,
    )


def assemble_diagnostics(spec: ExperimentSpec, model: Net, probes: ProbeSet) -> dict[str, Any]:
    """The result's diagnostic sections: each diagnostic reports into its group's section."""
    ctx = ReportContext(spec, model)
    for diagnostic in probes.diagnostics:
        diagnostic.report(ctx)
    return {s.name: ctx.sections[s.name] for s in SECTIONS if s.name in ctx.sections}


def json_safe(value: Any) -> Any:
    """Replace non-finite floats (not valid JSON) with None, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


def environment(spec: ExperimentSpec, device: torch.device) -> dict[str, Any]:
    env: dict[str, Any] = {
        "torch_version": torch.__version__,
        "python_version": platform.python_version(),
        "device": str(device),
        "device_name": platform.processor() or platform.machine(),
        "seed": spec.training.seed,
        "spec_hash": spec_hash(spec),
        "cpu_threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        env["device_name"] = props.name
        env["device_memory_bytes"] = props.total_memory
    return env


def run_experiment(spec: ExperimentSpec, hooks: RunHooks | None = None) -> dict[str, Any]:
    """Train the design the spec describes and return the JSON-safe result."""
    hooks = hooks or RunHooks()
    started = time.perf_counter()
    device = resolve_device(spec.training.device)
    seed = spec.training.seed
    torch.manual_seed(seed)
    analysis = analyze(spec)
    data = make_dataset(spec.data, seed, device)
    model = build_model(spec).to(device)
    loss_fn = loss_function(data.shape, spec.training.loss)

    probes = build_probes(spec, model, data, loss_fn)

    limits = [t for t in (spec.training.time_limit_s, hooks.time_limit_s) if t is not None]
    deadline = time.monotonic() + min(limits) if limits else None
    run = train(
        spec, model, data, probes, TrainHooks(hooks.on_progress, hooks.should_stop, deadline)
    )
    result: dict[str, Any] = {
        "summary": summarize(spec, model, run, data, loss_fn, time.perf_counter() - started),
        "curves": asdict(run.curves),
        "model": {
            "spec": spec.model.model_dump(),
            "layers": [layer.model_dump() for layer in analysis.layers],
            "head": analysis.head.model_dump(),
            "shapes": analysis.layer_shapes,
            "parameters": analysis.parameters,
            "flops_per_example": analysis.flops_per_example,
        },
        "environment": environment(spec, device),
    }
    if probes is not None:
        result.update(assemble_diagnostics(spec, model, probes))
    result["findings"] = findings(spec, result)
    result["headline"] = headline(result["findings"], result["summary"])
    safe: dict[str, Any] = json_safe(result)
    return safe


def summarize(
    spec: ExperimentSpec,
    model: Net,
    run: TrainOutcome,
    data: Dataset,
    loss_fn: LossFn,
    wall_time_s: float,
) -> dict[str, Any]:
    shape = data.shape
    summary: dict[str, Any] = {
        "outcome": run.outcome,
        "steps": run.steps_done,
        "planned_steps": total_steps(spec),
        "epochs": run.steps_done * run.batch_size / shape.n_train,
        "batch_size": run.batch_size,
        "diverged_at_step": run.diverged_at_step,
        "task": shape.task,
        "wall_time_s": wall_time_s,
        "train_time_s": run.train_time_s,
        "diagnostics_time_s": run.diagnostics_time_s,
        "samples_per_s": run.steps_done * run.batch_size / max(run.train_time_s, 1e-9),
        "device": str(data.x_train.device),
        "final_train_loss": None,
        "final_val_loss": None,
        "final_train_accuracy": None,
        "final_val_accuracy": None,
        "baseline_val_loss": baseline_loss(
            data, loss_fn, uses_cross_entropy(shape, spec.training.loss)
        ),
    }
    if run.outcome != "diverged":
        tr_loss, tr_acc = evaluate(model, data.x_train, data.y_train, loss_fn)
        val_loss, val_acc = evaluate(model, data.x_val, data.y_val, loss_fn)
        summary.update(
            final_train_loss=tr_loss,
            final_val_loss=val_loss,
            final_train_accuracy=tr_acc,
            final_val_accuracy=val_acc,
        )
    return summary
