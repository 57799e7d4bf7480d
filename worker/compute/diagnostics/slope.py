""" "Significant slope": how much of each nonlinearity operates where its derivative is large.

For the pre-activations z of each activation layer on the probe batch and tau (default 0.1):
slope coverage = share of entries with |phi'(z)| >= tau * max|phi'|; saturated share (bounded
activations) = the rest; dead units (ReLU-like) = units with z <= 0 on every probe example;
mean squared derivative = E[phi'(z)^2], the factor that enters the mean-field gain chi_1.
Vanilla RNN layers are included, with their tanh/relu over all time steps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from worker.compute.activations import Activation, get_activation
from worker.compute.diagnostics.base import BuildContext, CaptureDiagnostic, ReportContext
from worker.compute.diagnostics.capture import ProbeCapture
from worker.core.spec import ActivationLayer


def slope_stats(name: str, act: Activation, z: Tensor, tau: float) -> dict[str, Any]:
    """The slope statistics of one nonlinearity from its pre-activations (batch first).

    Kept to whole-tensor ops in z's own precision, with one host read: a probe runs this for
    every nonlinearity, and float64 copies of z, bool-to-float casts and a transposed
    reduction made it three times as slow on a 256 x 256 ReLU layer.
    The counts are exact; E[phi'^2] sums in float64.
    """
    d = act.derivative(z).abs()
    n = d.numel()
    # a unit is channel (images) or feature; it is dead when its largest z is <= 0 (NaN: not)
    largest = z.amax(dim=(0, 2, 3)) if z.dim() == 4 else z.reshape(-1, z.shape[-1]).amax(dim=0)
    covered, norm, dead = torch.stack([
        (d >= tau * act.max_abs_derivative).sum().double(),
        torch.linalg.vector_norm(d, dtype=torch.float64),
        (largest <= 0).sum().double(),
    ]).tolist()
    coverage = covered / n
    return {
        "layer": name,
        "activation": act.name,
        "slope_coverage": coverage,
        "saturated_share": 1.0 - coverage if act.kind == "saturating" else None,
        "dead_unit_share": dead / largest.numel() if act.kind == "relu_like" else None,
        "mean_sq_derivative": norm * norm / n,
    }


class SlopeStats(CaptureDiagnostic):
    """Slope coverage, saturation, dead units and E[phi'^2] per nonlinearity."""

    name = "activations"

    def __init__(self, activations: list[Activation], tau: float = 0.1) -> None:
        super().__init__()
        self.activations = activations
        self.tau = tau

    def compute(self, cap: ProbeCapture) -> dict[str, Any]:
        layers = [
            slope_stats(name, act, z, self.tau)
            for name, act, z in zip(
                cap.activation_names, self.activations, cap.preactivations, strict=True
            )
        ]
        for rec in cap.recurrent:
            if rec.kind == "rnn" and rec.preactivations:
                z = torch.stack(rec.preactivations, dim=1)  # (batch, steps, hidden)
                act = get_activation(ActivationLayer(name=rec.nonlinearity))
                layers.append(slope_stats(rec.name, act, z, self.tau))
        return {"step": cap.step, "nonlinearities": layers}

    def report(self, ctx: ReportContext) -> None:
        ctx.section(self.name).update(
            slope_threshold=ctx.spec.diagnostics.slope_threshold, probes=self.records
        )


def build(ctx: BuildContext) -> SlopeStats:
    observed = [obs.activation for obs in ctx.model.observed_activations]
    return SlopeStats(observed, ctx.settings.slope_threshold)
