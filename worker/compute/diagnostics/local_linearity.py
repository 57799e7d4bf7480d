"""Local linearity error: how well the first-order Taylor model predicts a small input step.

For each probe example x, a random unit direction u and a relative scale eps, with
delta = eps * ||x|| * u:  err = ||f(x + delta) - f(x) - J(x) delta|| / ||f(x + delta) - f(x)||.
J(x) delta comes from forward-mode autodiff (torch.func.jvp), exactly. Near 0: the network is
locally linear at that scale (local gradients predict the response); near 1 or above: it is not.
The median over the probe batch is reported per scale (the mean is dominated by rare kinks).
Examples whose output barely moves (||f(x + delta) - f(x)|| below 100 machine epsilons of
||f(x)||, e.g. behind vanishing gradients) make the ratio rounding noise; they are left out and
counted as ``insensitive_share``. Measured at initialization and at the end of training.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor
from torch.func import jvp

from worker.compute.diagnostics.base import BuildContext, Diagnostic, ProbeContext, ReportContext
from worker.compute.diagnostics.capture import unrolled_recurrence
from worker.compute.model import Net


def linearity_errors(model: Net, x: Tensor, scales: list[float], seed: int) -> list[Tensor]:
    """Per-example relative Taylor errors, one tensor per scale (model in eval mode).

    NaN marks an example whose output change is below the rounding floor. J(x) delta is linear
    in eps, so one forward-mode pass along d = ||x|| u serves every scale (J delta = eps J d),
    and the perturbed inputs of all scales go through the model as one batch: a third of the
    passes of one jvp per scale.
    """
    g = torch.Generator(device="cpu").manual_seed(seed)
    u = torch.randn(x.shape, generator=g, dtype=x.dtype).to(x.device)
    u = u / u.flatten(1).norm(dim=1).clamp_min(1e-30).view(-1, *([1] * (x.dim() - 1)))
    x_norm = x.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (x.dim() - 1)))
    was_training = model.training
    model.eval()  # per-example functions: batch norm uses running statistics, dropout is off
    try:
        with torch.no_grad(), unrolled_recurrence(model):
            f0, jd = jvp(model, (x,), (x_norm * u,))[:2]
            shifted = model(torch.cat([x + (eps * x_norm) * u for eps in scales]))
            floor = 1e2 * torch.finfo(x.dtype).eps * f0.flatten(1).norm(dim=1)
            out: list[Tensor] = []
            for eps, f1 in zip(scales, shifted.split(x.shape[0]), strict=True):
                diff = f1 - f0
                num = (diff - eps * jd).flatten(1).norm(dim=1)
                den = diff.flatten(1).norm(dim=1)
                ratio = num / den.clamp_min(1e-30)
                out.append(torch.where(den > floor, ratio, torch.full_like(ratio, math.nan)))
            return out
    finally:
        model.train(was_training)


class LocalLinearity(Diagnostic):
    """Median relative first-order error at each input-perturbation scale."""

    name = "local_linearity"

    def __init__(self, scales: list[float], seed: int) -> None:
        super().__init__()
        self.scales = scales
        self.seed = seed

    def at_probe(self, ctx: ProbeContext) -> None:
        if ctx.step == 0:
            self.records.append(self.measure(ctx))

    def measure(self, ctx: ProbeContext) -> dict[str, Any]:
        errors = linearity_errors(ctx.model, ctx.x, self.scales, self.seed)
        return {
            "step": ctx.step,
            "scales": self.scales,
            "median_error": [_nan_stat(e, "median") for e in errors],
            "mean_error": [_nan_stat(e, "mean") for e in errors],
            "insensitive_share": [float(e.isnan().double().mean()) for e in errors],
        }

    def at_end(self, ctx: ProbeContext) -> None:
        if not self.records or self.records[-1]["step"] != ctx.step:
            self.records.append(self.measure(ctx))
        if self.records:
            first, last = self.records[0], self.records[-1]
            self.summary = {
                "scales": self.scales,
                "median_error_at_init": first["median_error"],
                "median_error_at_end": last["median_error"],
            }

    def report(self, ctx: ReportContext) -> None:
        ctx.section(self.name)["local_linearity"] = self.records_and_summary()


def _nan_stat(values: Tensor, stat: str) -> float | None:
    kept = values[~values.isnan()]
    if kept.numel() == 0:
        return None
    return float(kept.median() if stat == "median" else kept.mean())


def build(ctx: BuildContext) -> LocalLinearity:
    return LocalLinearity(ctx.settings.linearity_scales, ctx.seed + 2)
