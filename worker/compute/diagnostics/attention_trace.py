"""One observed forward pass per probe step, shared by the attention diagnostics.

The signal-propagation, rank-collapse and attention-entropy diagnostics each listen to the same
pass on the fixed probe batch (no gradients, dropout off, batch statistics frozen): the first of
them to run at a probe step runs it, the others find it done. When the probe set runs a capture
(``capture.py``: the same batch, in the same probe mode) the listeners hear its forward pass
instead (``Tracer.observing``), which saves a forward per probe. Each listener reduces what it
sees at once (attention probabilities are batch x heads x steps x steps per layer; none kept).

Blocks are the top-level layers that contain attention (transformer blocks, bare self-attention
layers, residual layers around attention), named as the model names its layers.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn

from worker.compute.attention import SelfAttention, contains_attention
from worker.compute.diagnostics.base import Diagnostic, ProbeContext
from worker.compute.diagnostics.capture import probe_mode
from worker.compute.layers import Residual
from worker.compute.model import Net
from worker.compute.transformer import TransformerBlock

BRANCH_NAMES = ("attention", "mlp")


class Listener:
    """What a diagnostic hears of the observed pass; each method does nothing unless
    overridden."""

    def begin(self, step: int) -> None:
        """A pass at probe step ``step`` starts."""

    def on_input(self, h: Tensor) -> None:
        """The sequence entering the first block."""

    def on_block(self, index: int, h: Tensor) -> None:
        """Block ``index``'s output."""

    def on_branch(self, block: int, branch: str, skip: Tensor, update: Tensor) -> None:
        """A residual branch of a block: the stream it is added to and its (scaled) output."""

    def on_attention(self, layer: int, logits: Tensor, probs: Tensor, mask: Tensor | None) -> None:
        """One attention layer's scaled logits and probabilities (batch, heads, steps, steps)."""


def attention_blocks(model: Net) -> list[tuple[str, nn.Module]]:
    """The top-level layers that contain attention, input first, with their names."""
    return [(name, module) for name, module in zip(model.layer_names, model.layers, strict=True)
            if contains_attention(module)]


def attention_layers(model: Net) -> list[tuple[str, SelfAttention]]:
    """Every attention module, input first, named by its place in the model."""
    found = []
    for top, module in zip(model.layer_names, model.layers, strict=True):
        for sub, m in module.named_modules():
            if isinstance(m, SelfAttention):
                found.append((f"{top}.{sub}" if sub else top, m))
    return found


class Tracer:
    """The observed pass of one model, run at most once per probe step."""

    def __init__(self) -> None:
        self.listeners: list[Listener] = []
        self.step: int | None = None

    def run(self, model: Net, x: Tensor, step: int) -> None:
        if self.step == step:
            return
        with torch.no_grad(), probe_mode(model), self.observing(model, step):
            model(x)

    @contextmanager
    def observing(self, model: Net, step: int) -> Iterator[None]:
        """Make the forward pass run inside this step's observed pass: the probe set runs
        its capture (the same probe batch, in probe mode) inside it, saving a forward."""
        self.step = step
        for listener in self.listeners:
            listener.begin(step)
        with _observed(model, self.listeners):
            yield


class _observed:
    """Hooks and observers on the blocks and attention layers, removed on exit."""

    def __init__(self, model: Net, listeners: list[Listener]) -> None:
        self.model, self.listeners = model, listeners
        self.handles: list[torch.utils.hooks.RemovableHandle] = []
        self.observed: list[SelfAttention | TransformerBlock] = []

    def __enter__(self) -> None:
        blocks = attention_blocks(self.model)
        if blocks:
            self.handles.append(blocks[0][1].register_forward_pre_hook(
                lambda _m, inp: self._each(lambda li: li.on_input(inp[0]))))
        for b, (_, module) in enumerate(blocks):
            self.handles.append(module.register_forward_hook(self._block_hook(b)))
            if isinstance(module, TransformerBlock):
                module.observer = self._branch_observer(b)
                self.observed.append(module)
        for a, (_, layer) in enumerate(attention_layers(self.model)):
            layer.observer = self._attention_observer(a)
            self.observed.append(layer)

    def __exit__(self, *exc: object) -> None:
        for handle in self.handles:
            handle.remove()
        for module in self.observed:
            module.observer = None

    def _each(self, call: Callable[[Listener], None]) -> None:
        with torch.no_grad():  # the capture's pass records a graph; listeners add nothing
            for listener in self.listeners:
                call(listener)

    def _block_hook(self, b: int) -> Callable[[nn.Module, tuple[Tensor, ...], Tensor], None]:
        def hook(module: nn.Module, inp: tuple[Tensor, ...], out: Tensor) -> None:
            if isinstance(module, Residual):
                with torch.no_grad():
                    skip = module.projection(inp[0])
                self._each(lambda li: li.on_branch(b, "body", skip, out - skip))
            self._each(lambda li: li.on_block(b, out))
        return hook

    def _branch_observer(self, b: int) -> Callable[[int, Tensor, Tensor, Tensor], None]:
        def observe(i: int, skip: Tensor, update: Tensor, _out: Tensor) -> None:
            self._each(lambda li: li.on_branch(b, BRANCH_NAMES[i], skip, update))
        return observe

    def _attention_observer(self, a: int) -> Callable[[Tensor, Tensor, Tensor | None], None]:
        def observe(logits: Tensor, probs: Tensor, mask: Tensor | None) -> None:
            self._each(lambda li: li.on_attention(a, logits, probs, mask))
        return observe


_TRACERS: weakref.WeakKeyDictionary[Net, Tracer] = weakref.WeakKeyDictionary()


def tracer_for(model: Net, listener: Listener) -> Tracer:
    """The model's shared tracer, with ``listener`` added (one tracer per built model)."""
    tracer = _TRACERS.setdefault(model, Tracer())
    tracer.listeners.append(listener)
    return tracer


class TracedDiagnostic(Diagnostic, Listener):
    """A diagnostic that listens to the model's observed pass: what it hears at a probe step
    (``current``, started afresh by its ``begin``) is that step's record."""

    def __init__(self, model: Net) -> None:
        super().__init__()
        self.current: dict[str, Any] = {}
        self.tracer = tracer_for(model, self)

    def at_probe(self, ctx: ProbeContext) -> None:
        self.tracer.run(ctx.model, ctx.x, ctx.step)
        self.records.append(self.current)
