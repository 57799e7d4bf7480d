"""One instrumented forward/backward pass on the fixed probe batch.

Every probe diagnostic reads the same capture, so a probe step costs one extra forward and
backward however many diagnostics are on. Hooks exist only inside :func:`capture`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from worker.model import MLP

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class ProbeCapture:
    """What one probe pass saw, per hidden block (input to output) and per linear layer."""

    step: int
    loss: float
    block_output_grads: list[Tensor]  # dL/dh_l on the probe batch, l = 1..L
    preactivations: list[Tensor]  # z_l, the activation's input in block l
    layer_names: list[str]  # linear layers, input to output (hidden blocks, then the head)
    weights: list[Tensor]
    weight_grads: list[Tensor]


@contextmanager
def frozen_batchnorm_stats(model: nn.Module) -> Iterator[None]:
    """Keep batch-norm running statistics untouched while a probe runs in train mode.

    With momentum 0 the running-average update is ``r <- r``, so the probe sees the same
    batch statistics training would, and training later sees the same running stats.
    """
    saved: list[tuple[nn.modules.batchnorm._BatchNorm, Any]] = []
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            saved.append((module, module.momentum))
            module.momentum = 0.0
    try:
        yield
    finally:
        for module, momentum in saved:
            module.momentum = momentum


def capture(model: MLP, loss_fn: LossFn, x: Tensor, y: Tensor, step: int) -> ProbeCapture:
    """Run the probe batch through ``model`` and collect activations and gradients."""
    outputs: list[Tensor] = []
    preacts: list[Tensor] = []
    handles = []
    for block in model.hidden_blocks():
        handles.append(block.register_forward_hook(lambda _m, _i, out: outputs.append(out)))
        handles.append(
            block.act.register_forward_hook(lambda _m, inp, _o: preacts.append(inp[0].detach()))
        )
    named = model.linear_layers()
    weights = [layer.weight for _, layer in named]
    try:
        with frozen_batchnorm_stats(model):
            loss = loss_fn(model(x), y)
    finally:
        for handle in handles:
            handle.remove()
    grads = torch.autograd.grad(loss, [*outputs, *weights])
    n = len(outputs)
    return ProbeCapture(
        step=step,
        loss=float(loss.detach()),
        block_output_grads=[g.detach() for g in grads[:n]],
        preactivations=preacts,
        layer_names=[name for name, _ in named],
        weights=[w.detach() for w in weights],
        weight_grads=[g.detach() for g in grads[n:]],
    )
