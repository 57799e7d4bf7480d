"""Gradient noise scale B_simple = tr(Sigma) / ||G||^2 (McCandlish et al. 2018).

G is the mean gradient over the probe batch, Sigma the covariance of per-example gradients
(unbiased). B_simple estimates the batch size beyond which larger batches stop paying off.
Per-example gradients come from torch.func.vmap over grad, in chunks to bound memory. With
batch norm a per-example gradient is undefined (each example's output depends on the batch),
so the probe is skipped with that reason.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.func import functional_call, grad, vmap

from worker.compute.diagnostics.base import BuildContext, Diagnostic, LossFn, ProbeContext
from worker.compute.diagnostics.capture import probe_mode, unrolled_recurrence
from worker.compute.model import Net

CHUNK = 32


def noise_scale(model: Net, loss_fn: LossFn, x: Tensor, y: Tensor) -> dict[str, Any]:
    params = {k: v.detach() for k, v in model.named_parameters()}
    buffers = {k: v.detach() for k, v in model.named_buffers()}

    def example_loss(p: dict[str, Tensor], xi: Tensor, yi: Tensor) -> Tensor:
        out: Tensor = functional_call(model, (p, buffers), (xi[None],))
        return loss_fn(out, yi[None])

    per_example = vmap(grad(example_loss), in_dims=(None, 0, 0))
    n = x.shape[0]
    sum_sq = torch.zeros((), dtype=torch.float64, device=x.device)
    mean: Tensor | None = None
    with probe_mode(model), unrolled_recurrence(model):
        for start in range(0, n, CHUNK):
            grads = per_example(params, x[start : start + CHUNK], y[start : start + CHUNK])
            flat = torch.cat([g.flatten(1) for g in grads.values()], dim=1).double()
            sum_sq += flat.pow(2).sum()
            chunk_sum = flat.sum(dim=0)
            mean = chunk_sum if mean is None else mean + chunk_sum
    assert mean is not None
    mean = mean / n
    g2 = float(mean.pow(2).sum())
    trace = float((sum_sq - n * mean.pow(2).sum()) / (n - 1))
    return {
        "trace_covariance": trace,
        "mean_grad_sq_norm": g2,
        "b_simple": trace / g2 if g2 > 0 else None,
        "examples": n,
    }


class NoiseScale(Diagnostic):
    name = "noise_scale"

    def at_probe(self, ctx: ProbeContext) -> None:
        if any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in ctx.model.modules()):
            self.summary = {
                "skipped": "batch norm couples the examples of a batch, so per-example "
                "gradients are undefined"
            }
            return
        self.records.append({"step": ctx.step, **noise_scale(ctx.model, ctx.loss_fn, ctx.x, ctx.y)})


def build(ctx: BuildContext) -> NoiseScale:
    return NoiseScale()
