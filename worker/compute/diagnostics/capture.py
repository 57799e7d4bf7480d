"""One instrumented forward/backward pass on the fixed probe batch.

Every probe diagnostic reads the same capture, so a probe step costs one extra forward and
backward however many diagnostics are on. Hooks exist only inside :func:`capture`; during it
dropout is off, batch-norm running statistics are frozen and recurrent layers run unrolled.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

import torch
from torch import Tensor, nn

from worker.compute.model import Net

LossFn = Callable[[Tensor, Tensor], Tensor]


@dataclass(frozen=True)
class RecurrentCapture:
    """Through-time view of one recurrent layer: dL/dh_t for t = 1..T, and its gates."""

    name: str
    kind: str
    nonlinearity: Literal["tanh", "relu"]
    state_grads: list[Tensor]
    forget_gates: list[Tensor]
    preactivations: list[Tensor]


@dataclass(frozen=True)
class ProbeCapture:
    """What one probe pass saw: block outputs' gradients, pre-activations, weights."""

    step: int
    loss: float
    block_names: list[str]
    block_output_grads: list[Tensor]  # dL/dh_l on the probe batch, l = 1..L
    activation_names: list[str]
    preactivations: list[Tensor]  # z of every activation layer, input to output
    layer_names: list[str]  # weight layers, input to output
    weights: list[Tensor]
    weight_grads: list[Tensor]
    param_grads: list[Tensor]  # every parameter's gradient, in model.parameters() order
    recurrent: list[RecurrentCapture] = field(default_factory=list)


@contextmanager
def dropout_off(model: nn.Module) -> Iterator[None]:
    """Dropout layers in eval mode (deterministic probes), restored afterwards."""
    drops = [(m, m.training) for m in model.modules() if isinstance(m, nn.Dropout)]
    for m, _ in drops:
        m.eval()
    try:
        yield
    finally:
        for m, training in drops:
            m.train(training)


@contextmanager
def probe_mode(model: nn.Module) -> Iterator[None]:
    """Deterministic, side-effect-free forward passes for probes.

    Batch norm uses batch statistics, as in training, but with ``track_running_stats`` off
    it neither reads nor writes its running buffers (no mutation, which also keeps forward-mode
    and vmap transforms legal); dropout is switched off.
    """
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.track_running_stats, m.training) for m in norms]
    for m in norms:
        m.track_running_stats = False
        m.train()
    try:
        with dropout_off(model):
            yield
    finally:
        for m, (track, training) in zip(norms, saved, strict=True):
            m.track_running_stats = track
            m.train(training)


@contextmanager
def unrolled_recurrence(model: Net) -> Iterator[None]:
    layers = [m for _, m in model.recurrent_layers()]
    for m in layers:
        m.unrolled = True
    try:
        yield
    finally:
        for m in layers:
            m.unrolled = False


def capture(model: Net, loss_fn: LossFn, x: Tensor, y: Tensor, step: int) -> ProbeCapture:
    """Run the probe batch through ``model`` and collect activations and gradients."""
    outputs: list[Tensor] = []
    preacts: list[Tensor] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, out: outputs.append(out))
        for m in model.probe_modules()
    ] + [
        obs.module.register_forward_hook(lambda _m, inp, _o: preacts.append(inp[0].detach()))
        for obs in model.observed_activations
    ]
    named = model.weight_layers()
    weights = [w for _, w in named]
    params = list(model.parameters())
    weight_index = [next(i for i, p in enumerate(params) if p is w) for w in weights]
    recurrent = model.recurrent_layers()
    try:
        with probe_mode(model), unrolled_recurrence(model):
            loss = loss_fn(model(x), y)
    finally:
        for handle in handles:
            handle.remove()
    states = [h for _, m in recurrent for h in m.states]
    grads = torch.autograd.grad(loss, [*outputs, *states, *params])
    n_out, n_states = len(outputs), len(states)
    state_grads = [g.detach() for g in grads[n_out : n_out + n_states]]
    param_grads = [g.detach() for g in grads[n_out + n_states :]]
    rec_caps, pos = [], 0
    for name, m in recurrent:
        steps = len(m.states)
        rec_caps.append(
            RecurrentCapture(
                name,
                m.kind,
                m.nonlinearity,
                state_grads[pos : pos + steps],
                m.forget_gates,
                m.preactivations,
            )
        )
        pos += steps
        m.states = []  # release the graph
    return ProbeCapture(
        step=step,
        loss=float(loss.detach()),
        block_names=model.probe_names(),
        block_output_grads=[g.detach() for g in grads[:n_out]],
        activation_names=[obs.name for obs in model.observed_activations],
        preactivations=preacts,
        layer_names=[name for name, _ in named],
        weights=[w.detach() for w in weights],
        weight_grads=[param_grads[i] for i in weight_index],
        param_grads=param_grads,
        recurrent=rec_caps,
    )
