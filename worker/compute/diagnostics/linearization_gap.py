"""Linearization gap: how far training went from the linearized (lazy / NTK) regime.

gap = ||f_{theta_T}(x) - f_{theta_0}(x) - J_{theta_0} (theta_T - theta_0)|| /
      ||f_{theta_T}(x) - f_{theta_0}(x)||  on the probe batch.
J_{theta_0} (theta_T - theta_0) is one forward-mode product (torch.func.jvp over the
parameters). Near 0: the network trained like its own linearization; near 1: far from it.
Batch norm uses batch statistics (train mode, running averages frozen), dropout is off.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.func import functional_call, jvp
from torch.nn.utils import parameters_to_vector

from worker.compute.diagnostics.base import BuildContext, Diagnostic, ProbeContext, ReportContext
from worker.compute.diagnostics.capture import probe_mode, unrolled_recurrence
from worker.compute.model import Net


def unflatten(model: Net, flat: Tensor) -> dict[str, Tensor]:
    out, pos = {}, 0
    for name, p in model.named_parameters():
        out[name] = flat[pos : pos + p.numel()].view_as(p)
        pos += p.numel()
    return out


@torch.no_grad()
def linearization_gap(model: Net, theta0: Tensor, theta_end: Tensor, x: Tensor) -> float:
    p0, p_end = unflatten(model, theta0), unflatten(model, theta_end)
    delta = {k: p_end[k] - p0[k] for k in p0}

    def f(params: dict[str, Tensor]) -> Tensor:
        out: Tensor = functional_call(model, params, (x,))
        return out

    was_training = model.training
    model.train()
    try:
        with probe_mode(model), unrolled_recurrence(model):
            f0, jd = jvp(f, (p0,), (delta,))[:2]
            f_end = f(p_end)
    finally:
        model.train(was_training)
    change = f_end - f0
    return float((change - jd).norm() / change.norm().clamp_min(1e-30))


class LinearizationGap(Diagnostic):
    name = "linearization_gap"
    needs_theta0 = True

    def at_end(self, ctx: ProbeContext) -> None:
        if ctx.theta0 is None:
            return
        theta_end = parameters_to_vector(ctx.model.parameters()).detach().clone()
        theta0 = ctx.theta0.to(device=theta_end.device, dtype=theta_end.dtype)
        self.summary = {"gap": linearization_gap(ctx.model, theta0, theta_end, ctx.x)}

    def report(self, ctx: ReportContext) -> None:
        ctx.section(self.name)["linearization_gap"] = self.summary


def build(ctx: BuildContext) -> LinearizationGap:
    return LinearizationGap()
