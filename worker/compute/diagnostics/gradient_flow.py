"""Vanishing / exploding gradients: how the loss gradient's size changes with depth.

For block outputs h_1..h_L, ``activation_grad_rms[l]`` is the RMS of dL/dh_l over the probe
batch and units. The per-layer gain ``gains[l] = rms[l] / rms[l+1]`` is the factor by which one
block multiplies the gradient on its way back toward the input; the end-to-end ratio
``rms[1] / rms[L]`` is their product.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import torch
from torch import Tensor

from worker.compute.diagnostics.base import BuildContext, CaptureDiagnostic, ReportContext
from worker.compute.diagnostics.capture import ProbeCapture

Verdict = Literal["vanishing", "exploding", "healthy"]


def rms(t: Tensor) -> float:
    """Root mean square over every entry, summed in float64 (no overflow of the squares),
    without a float64 copy of ``t``."""
    if t.numel() == 0:
        return math.nan
    return float(torch.linalg.vector_norm(t, dtype=torch.float64)) / math.sqrt(t.numel())


def verdict(end_to_end_ratio: float, vanishing_below: float, exploding_above: float) -> Verdict:
    """Classify an end-to-end gradient ratio with the configured thresholds."""
    if not math.isfinite(end_to_end_ratio) or end_to_end_ratio > exploding_above:
        return "exploding"
    if end_to_end_ratio < vanishing_below:
        return "vanishing"
    return "healthy"


def _safe_ratio(num: float, den: float) -> float:
    if den == 0.0:
        return math.inf if num > 0 else 1.0
    return num / den


class GradientFlow(CaptureDiagnostic):
    """Per-layer gradient RMS, gains, end-to-end ratio, and weight-gradient norms."""

    name = "gradient_flow"

    def __init__(self, vanishing_below: float = 1e-2, exploding_above: float = 1e2) -> None:
        super().__init__()
        self.vanishing_below = vanishing_below
        self.exploding_above = exploding_above

    def report(self, ctx: ReportContext) -> None:
        """The gradient_flow section; update_ratio, mean_field and recurrent add to it."""
        for record in self.records:
            record["update_to_weight"] = None
            record["end_to_end_verdict"] = record["verdict"]
        ctx.set_section(self.name, {
            "layers": ctx.model.probe_names(),
            "weight_layers": [name for name, _ in ctx.model.weight_layers()],
            "probe_steps": [p["step"] for p in self.records],
            "probes": self.records,
            "mean_field": None,
            "recurrent": None,
        })

    def compute(self, cap: ProbeCapture) -> dict[str, Any]:
        grad_rms = [rms(g) for g in cap.block_output_grads]
        if not grad_rms:  # no nonlinear stage to observe (a purely linear body)
            grad_rms = [math.nan]
        gains = [_safe_ratio(a, b) for a, b in zip(grad_rms[:-1], grad_rms[1:], strict=True)]
        positive = [g for g in gains if g > 0 and math.isfinite(g)]
        if gains and len(positive) == len(gains):
            geomean = math.exp(sum(math.log(g) for g in positive) / len(positive))
            gain_db: float | None = 20.0 * math.log10(geomean)
        else:
            geomean, gain_db = (1.0, 0.0) if not gains else (math.nan, None)
        end_to_end = _safe_ratio(grad_rms[0], grad_rms[-1]) if len(grad_rms) > 1 else 1.0
        weight_norms = [float(w.double().norm()) for w in cap.weights]
        weight_grad_norms = [float(g.double().norm()) for g in cap.weight_grads]
        return {
            "step": cap.step,
            "loss": cap.loss,
            "activation_grad_rms": [r for r in grad_rms if not math.isnan(r)],
            "gains": gains,
            "gain_geomean": geomean,
            "gain_db": gain_db,
            "end_to_end_ratio": end_to_end,
            "verdict": verdict(end_to_end, self.vanishing_below, self.exploding_above),
            "weight_norm": weight_norms,
            "weight_grad_norm": weight_grad_norms,
            "grad_to_weight_ratio": [
                _safe_ratio(g, w) for g, w in zip(weight_grad_norms, weight_norms, strict=True)
            ],
        }


def build(ctx: BuildContext) -> GradientFlow:
    return GradientFlow(ctx.settings.vanishing_ratio, ctx.settings.exploding_ratio)
