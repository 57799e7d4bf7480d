"""Gradients through time in recurrent layers: how far back the loss signal reaches.

For each recurrent layer, ``grad_rms[t]`` is the RMS over the probe batch and units of dL/dh_t
(t = 1..T, every path through later steps included, from the unrolled forward). The per-step
gain is the geometric mean of grad_rms[t] / grad_rms[t+1]; the memory horizon is how far back
the gradient still reaches: the number of steps back from the last step to the earliest step
whose grad_rms is at least 1% of its value at the last step (``None`` when even the first step
is: the gradient reaches the whole sequence). For a decaying profile this is where it first
falls below 1%; a trained LSTM's profile is instead a flat, noisy plateau at a few percent,
where single steps can dip under 1% far from where the signal ends (seen with small probe
batches), so the horizon is read from the earliest step reached, not the first dip.
LSTMs also report the mean forget gate.
Verdict per layer: ``vanishing`` when the horizon is shorter than half the task's dependency
length (the sequence length), ``exploding`` when the gradient at the first step exceeds the
last step's by the exploding ratio, else ``healthy``.
"""

from __future__ import annotations

import math
from typing import Any

from torch import Tensor

from worker.compute.diagnostics.base import BuildContext, Diagnostic, ProbeContext, ReportContext
from worker.compute.diagnostics.capture import RecurrentCapture
from worker.compute.diagnostics.gradient_flow import rms

HORIZON_FRACTION = 0.01


def memory_horizon(grad_rms: list[float], fraction: float = HORIZON_FRACTION) -> int | None:
    """Steps back from the last step to the earliest step whose gradient RMS is still at
    least ``fraction`` of the last step's (None: the first step is, so the reach is >= T)."""
    threshold = fraction * grad_rms[-1]
    earliest = next(t for t, value in enumerate(grad_rms) if value >= threshold)
    return None if earliest == 0 else len(grad_rms) - earliest


def recurrent_verdict(
    grad_rms: list[float], horizon: int | None, dependency: int, exploding_above: float
) -> str:
    if horizon is not None and horizon < dependency / 2:
        return "vanishing"
    if grad_rms and grad_rms[-1] > 0 and grad_rms[0] / grad_rms[-1] > exploding_above:
        return "exploding"
    return "healthy"


def through_time(cap: RecurrentCapture, exploding_above: float = 1e2) -> dict[str, Any]:
    grad_rms = [rms(g) for g in cap.state_grads]
    ratios = [a / b for a, b in zip(grad_rms[:-1], grad_rms[1:], strict=True) if a > 0 and b > 0]
    geomean = math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else None
    horizon = memory_horizon(grad_rms) if grad_rms else None
    record: dict[str, Any] = {
        "layer": cap.name,
        "kind": cap.kind,
        "steps": len(grad_rms),
        "grad_rms": grad_rms,
        "per_step_gain": geomean,
        "memory_horizon": horizon,
        "verdict": recurrent_verdict(grad_rms, horizon, len(grad_rms), exploding_above),
        "forget_gate_mean": None,
    }
    if cap.forget_gates:
        gates: list[Tensor] = cap.forget_gates
        record["forget_gate_mean"] = float(
            sum(float(f.double().mean()) for f in gates) / len(gates)
        )
    return record


class ThroughTime(Diagnostic):
    """Per recurrent layer: gradient RMS per time step, per-step gain, horizon, forget gate."""

    name = "recurrent"
    needs_capture = True

    def __init__(self, exploding_above: float = 1e2) -> None:
        super().__init__()
        self.exploding_above = exploding_above

    def at_probe(self, ctx: ProbeContext) -> None:
        assert ctx.capture is not None
        if ctx.capture.recurrent:
            layers = [through_time(c, self.exploding_above) for c in ctx.capture.recurrent]
            self.records.append({"step": ctx.step, "layers": layers})

    def report(self, ctx: ReportContext) -> None:
        """Into the gradient_flow section; its probes' overall verdict also weighs the gradient
        through time (sequence models)."""
        flow = ctx.existing(self.name)
        if flow is None:
            return
        flow["recurrent"] = self.records
        by_step = {rec["step"]: rec["layers"] for rec in self.records}
        for record in flow["probes"]:
            verdicts = [
                record["end_to_end_verdict"],
                *(x["verdict"] for x in by_step.get(record["step"], [])),
            ]
            record["verdict"] = next(
                (v for v in ("exploding", "vanishing") if v in verdicts), "healthy"
            )


def build(ctx: BuildContext) -> ThroughTime | None:
    """None for a model without recurrent layers."""
    if not ctx.model.recurrent_layers():
        return None
    return ThroughTime(ctx.settings.exploding_ratio)
