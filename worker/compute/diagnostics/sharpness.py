"""Sharpness: the top Hessian eigenvalue of the probe-batch loss, beside SGD's stability limit.

Power iteration on Hessian-vector products (double backward), from a seeded random start;
the Rayleigh quotient of the last iterate is reported (it converges to the eigenvalue of
largest magnitude). SGD with momentum beta and learning rate eta is stable on a quadratic
only while lambda_max < 2 (1 + beta) / eta; above it the loss oscillates or diverges along
that direction.
"""

from __future__ import annotations

import torch
from torch import Tensor

from worker.compute.diagnostics.base import BuildContext, Diagnostic, LossFn, ProbeContext
from worker.compute.diagnostics.capture import probe_mode, unrolled_recurrence
from worker.compute.model import Net


def top_hessian_eigenvalue(
    model: Net, loss_fn: LossFn, x: Tensor, y: Tensor, iterations: int, seed: int
) -> float:
    params = [p for p in model.parameters() if p.requires_grad]
    with probe_mode(model), unrolled_recurrence(model):
        loss = loss_fn(model(x), y)
    grads = torch.autograd.grad(loss, params, create_graph=True)
    g = torch.Generator().manual_seed(seed)
    v = [torch.randn(p.shape, generator=g, dtype=p.dtype).to(p.device) for p in params]
    eigenvalue = 0.0
    for _ in range(iterations):
        norm = torch.stack([(t * t).sum() for t in v]).sum().sqrt()
        v = [t / norm for t in v]
        hv = torch.autograd.grad(grads, params, grad_outputs=v, retain_graph=True)
        eigenvalue = float(sum((a * b).sum() for a, b in zip(v, hv, strict=True)))
        v = [t.detach() for t in hv]
    return eigenvalue


class Sharpness(Diagnostic):
    name = "sharpness"

    def __init__(self, iterations: int, seed: int) -> None:
        super().__init__()
        self.iterations, self.seed = iterations, seed

    def at_probe(self, ctx: ProbeContext) -> None:
        lam = top_hessian_eigenvalue(
            ctx.model, ctx.loss_fn, ctx.x, ctx.y, self.iterations, self.seed
        )
        threshold = 2.0 * (1.0 + ctx.momentum) / ctx.lr
        self.records.append(
            {
                "step": ctx.step,
                "top_eigenvalue": lam,
                "stability_threshold": threshold,
                "ratio": lam / threshold,
                "lr": ctx.lr,
            }
        )


def build(ctx: BuildContext) -> Sharpness:
    return Sharpness(ctx.settings.sharpness_iterations, ctx.seed + 4)
