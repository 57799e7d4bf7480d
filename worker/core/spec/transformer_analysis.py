"""Shapes, parameters, FLOPs and memory of attention and transformer layers (torch-free), the
``transformer`` family's compiled layers, and the causality check of token tasks.

The rules join ``shapes.SHAPE_RULES`` (this module does not import ``shapes``, which imports
it). Counts are per example: FLOPs are 2 x multiply-adds of one forward pass; ``activations``
adds what the layer keeps for the backward pass beyond its output (attention keeps its
heads x steps x steps scores and probabilities, which dominate memory for long sequences).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

from worker.core.spec.layers import Layer, NormLayer, ResidualLayer
from worker.core.spec.transformer import (
    EmbeddingLayer,
    GatedMLPLayer,
    PositionalEncodingLayer,
    RMSNormLayer,
    SelfAttentionLayer,
    SequencePoolLayer,
    TransformerBlockLayer,
    TransformerModel,
)

Shape = tuple[int, ...]
Fail = Callable[[str], Exception]


class Counts(Protocol):
    """``shapes.Counts``: per-example totals."""

    parameters: int
    flops: int
    activations: int


def _sequence(shape: Shape, fail: Fail) -> tuple[int, int]:
    if len(shape) != 2:
        raise fail(f"needs a sequence (steps, features), got {shape}")
    return shape[0], shape[1]


def _heads(heads: int, d: int, fail: Fail) -> int:
    if d % heads:
        raise fail(f"{heads} heads do not divide the width {d}")
    return d // heads


def _embedding(layer: EmbeddingLayer, shape: Shape, counts: Counts, fail: Fail) -> Shape:
    steps, vocab = _sequence(shape, fail)
    if layer.vocab is not None and layer.vocab != vocab:
        raise fail(f"vocab is {layer.vocab} but the data has {vocab} tokens per step")
    counts.parameters += vocab * layer.dim
    counts.flops += 2 * steps * vocab * layer.dim
    return (steps, layer.dim)


def _positional(layer: PositionalEncodingLayer, shape: Shape, counts: Counts,
                fail: Fail) -> Shape:
    steps, d = _sequence(shape, fail)
    if layer.kind == "learned":
        counts.parameters += steps * d
    counts.flops += steps * d if layer.kind != "none" else 0
    return shape


def attention_cost(steps: int, d: int, heads: int, qk_norm: bool, counts: Counts) -> None:
    """Q, K, V and output projections (with biases), scores, softmax and the weighted sum."""
    counts.parameters += 4 * d * d + 4 * d + (4 * (d // heads) if qk_norm else 0)
    counts.flops += 2 * steps * d * 4 * d + 4 * steps * steps * d + 5 * heads * steps * steps
    counts.activations += 3 * steps * d + 2 * heads * steps * steps


def _attention(layer: SelfAttentionLayer, shape: Shape, counts: Counts, fail: Fail) -> Shape:
    steps, d = _sequence(shape, fail)
    _heads(layer.heads, d, fail)
    attention_cost(steps, d, layer.heads, layer.qk_norm, counts)
    return shape


def _rms_norm(_layer: RMSNormLayer, shape: Shape, counts: Counts, fail: Fail) -> Shape:
    if len(shape) == 3:
        raise fail(f"normalizes the last dimension of a vector or a sequence, got an image "
                   f"{shape}; use layer_norm")
    counts.parameters += shape[-1]
    counts.flops += 3 * math.prod(shape)
    return shape


def gated_cost(steps: int, d: int, hidden: int, out: int, counts: Counts) -> None:
    counts.parameters += 2 * d * hidden + hidden * out
    counts.flops += 2 * steps * (2 * d * hidden + hidden * out) + 2 * steps * hidden
    counts.activations += 3 * steps * hidden


def _gated(layer: GatedMLPLayer, shape: Shape, counts: Counts, fail: Fail) -> Shape:
    if len(shape) == 3:
        raise fail(f"needs a vector or a sequence, got an image {shape}; add flatten first")
    steps = shape[0] if len(shape) == 2 else 1
    out = layer.out or shape[-1]
    gated_cost(steps, shape[-1], layer.hidden, out, counts)
    return (*shape[:-1], out)


def _pool(_layer: SequencePoolLayer, shape: Shape, counts: Counts, fail: Fail) -> Shape:
    steps, d = _sequence(shape, fail)
    counts.flops += steps * d
    return (d,)


def _block(layer: TransformerBlockLayer, shape: Shape, counts: Counts, fail: Fail) -> Shape:
    steps, d = _sequence(shape, fail)
    _heads(layer.heads, d, fail)
    attention_cost(steps, d, layer.heads, layer.qk_norm, counts)
    hidden = layer.mlp_hidden(d)
    if layer.mlp == "gated":
        gated_cost(steps, d, hidden, d, counts)
    else:
        counts.parameters += 2 * d * hidden + hidden + d
        counts.flops += 4 * steps * d * hidden + steps * hidden
        counts.activations += 2 * steps * hidden
    if layer.norm_position != "none":
        counts.parameters += 2 * (2 * d if layer.norm == "layer_norm" else d)
        counts.flops += 2 * 4 * steps * d
    if layer.residual_scale in ("rezero", "skipinit"):
        counts.parameters += 2
    counts.flops += 4 * steps * d  # the two scaled additions
    counts.activations += 4 * steps * d  # normalized inputs and branch outputs
    return shape


#: The shape rule of each layer type of this module, for ``shapes.SHAPE_RULES``.
TRANSFORMER_SHAPE_RULES: dict[type, Callable[[Any, Shape, Any, Fail], Shape]] = {
    EmbeddingLayer: _embedding,
    PositionalEncodingLayer: _positional,
    SelfAttentionLayer: _attention,
    RMSNormLayer: _rms_norm,
    GatedMLPLayer: _gated,
    SequencePoolLayer: _pool,
    TransformerBlockLayer: _block,
}


def compile_transformer(model: TransformerModel, per_step: bool) -> list[Layer]:
    """The layers the ``transformer`` family stands for (see :class:`TransformerModel`)."""
    layers: list[Layer] = [EmbeddingLayer(dim=model.width)]
    if model.positional != "none":
        layers.append(PositionalEncodingLayer(kind=model.positional))
    layers += [model.block() for _ in range(model.depth)]
    if model.norm_position == "pre":  # Pre-LN's stream is not normalized: a final norm
        layers.append(RMSNormLayer() if model.norm == "rms_norm" else NormLayer(type="layer_norm"))
    if not per_step:
        layers.append(SequencePoolLayer(mode="last" if model.causal else "mean"))
    return layers


AttentionSpec = SelfAttentionLayer | TransformerBlockLayer


def _attention_layers(layers: list[Layer], base: tuple[str | int, ...],
                      family: bool) -> list[tuple[tuple[str | int, ...], AttentionSpec]]:
    found: list[tuple[tuple[str | int, ...], AttentionSpec]] = []
    for i, layer in enumerate(layers):
        loc = base if family else (*base, i)
        if isinstance(layer, SelfAttentionLayer | TransformerBlockLayer):
            found.append((loc, layer))
        elif isinstance(layer, ResidualLayer):
            found += _attention_layers(layer.body, (*loc, "body"), False)
    return found


def look_ahead(layers: list[Layer], base: tuple[str | int, ...],
               family: bool) -> tuple[tuple[str | int, ...], str] | None:
    """Where a model would see its targets on a causal task: the first non-causal attention
    (its location and the message), or None."""
    for loc, layer in _attention_layers(layers, base, family):
        if not layer.causal:
            return loc, (f"{layer.type} layer: the task is causal (the target at each step "
                         "is the next input token), so attention must be causal: set causal "
                         "true (prompt tasks also have a bidirectional layout: data.causal "
                         "false)")
    return None


def transformer_block_count(layers: list[Layer]) -> int:
    """N of DeepNorm: the transformer blocks of the model, nested ones included."""
    count = 0
    for layer in layers:
        if isinstance(layer, TransformerBlockLayer):
            count += 1
        elif isinstance(layer, ResidualLayer):
            count += transformer_block_count(layer.body)
    return count
