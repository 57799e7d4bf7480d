"""One trained model -> its result JSON: summary, curves, the diagnostic sections, findings.

Shared by the single run (``pipeline.py``) and by every member of a multi-seed run
(``seeds.py``), so a member's result is built exactly as a single run's is.
"""

from __future__ import annotations

import hashlib
import math
import platform
from dataclasses import asdict
from typing import Any

import torch

from worker.compute.data import Dataset
from worker.compute.diagnostics.base import ReportContext
from worker.compute.diagnostics.probes import ProbeSet, probe_steps
from worker.compute.diagnostics.registry import build_diagnostics
from worker.compute.evaluation import LossFn, baseline_loss, loss_function, uses_cross_entropy
from worker.compute.model import Net
from worker.compute.training import TrainOutcome
from worker.core.diagnostic_groups import SECTIONS
from worker.core.findings import findings, headline
from worker.core.spec import Analysis, ExperimentSpec, total_steps


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
    idx = torch.randperm(data.x_train.shape[0], generator=g)[: spec.probe_batch()]
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


def model_echo(spec: ExperimentSpec, analysis: Analysis) -> dict[str, Any]:
    return {
        "spec": spec.model.model_dump(),
        "layers": [layer.model_dump() for layer in analysis.layers],
        "head": analysis.head.model_dump(),
        "shapes": analysis.layer_shapes,
        "parameters": analysis.parameters,
        "flops_per_example": analysis.flops_per_example,
    }


def summarize(
    spec: ExperimentSpec, run: TrainOutcome, data: Dataset, loss_fn: LossFn, wall_time_s: float
) -> dict[str, Any]:
    """The summary; the final losses are the run's last evaluation (none when diverged)."""
    shape = data.shape
    final = run.final
    return {
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
        "probe_batch_size": run.probe_batch,
        "device": str(data.x_train.device),
        "final_train_loss": final.train_loss if final else None,
        "final_val_loss": final.val_loss if final else None,
        "final_train_accuracy": final.train_accuracy if final else None,
        "final_val_accuracy": final.val_accuracy if final else None,
        "baseline_val_loss": baseline_loss(
            data, loss_fn, uses_cross_entropy(shape, spec.training.loss)
        ),
        "analyses_skipped": run.skipped_analyses,
    }


def member_result(
    spec: ExperimentSpec,
    analysis: Analysis,
    model: Net,
    probes: ProbeSet | None,
    run: TrainOutcome,
    data: Dataset,
    wall_time_s: float,
) -> dict[str, Any]:
    """The result of one trained model (not yet JSON-safe): what a single run returns."""
    loss_fn = loss_function(data.shape, spec.training.loss)
    result: dict[str, Any] = {
        "summary": summarize(spec, run, data, loss_fn, wall_time_s),
        "curves": asdict(run.curves),
        "model": model_echo(spec, analysis),
        "environment": environment(spec, torch.device(data.x_train.device.type)),
    }
    if probes is not None:
        result.update(assemble_diagnostics(spec, model, probes))
    result["findings"] = findings(spec, result)
    result["headline"] = headline(result["findings"], result["summary"])
    return result
