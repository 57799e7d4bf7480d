"""The transformer block and the builder of every attention-layer type (spec:
``worker/core/spec/transformer.py``, whose module text defines the block's variants).

``build_transformer_layer`` is the model builder's branch for these layer types: it builds the
module, initializes its weights with the spec's scheme (DeepNorm's where asked) and names the
weight matrices, so the gradient-flow and update-ratio probes see them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from worker.compute.attention import GatedMLP, PositionalEncoding, SelfAttention, SequencePool
from worker.core.spec import (
    ActivationLayer,
    ActivationName,
    EmbeddingLayer,
    GatedMLPLayer,
    Layer,
    PositionalEncodingLayer,
    RMSNormLayer,
    SelfAttentionLayer,
    SequencePoolLayer,
    TransformerBlockLayer,
)

if TYPE_CHECKING:
    from worker.compute.model import _Builder

#: ``observer(branch, skip, update, out)``: branch 0 is attention, 1 the MLP; ``skip`` is what
#: the branch is added to (a x for Post-LN), ``update`` the scaled branch output, ``out`` the
#: stream after the branch (after the norm for Post-LN).
BlockObserver = Callable[[int, Tensor, Tensor, Tensor], None]
TRANSFORMER_LAYER_TYPES = (EmbeddingLayer, PositionalEncodingLayer, SelfAttentionLayer,
                           RMSNormLayer, GatedMLPLayer, SequencePoolLayer, TransformerBlockLayer)
Shape = tuple[int, ...]


def deepnorm_constants(blocks: int) -> tuple[float, float]:
    """DeepNet's (Wang et al. 2022) alpha and beta for one stack of N blocks (encoder-only or
    decoder-only): alpha = (2N)^(1/4) on the skip, beta = (8N)^(-1/4) as init gain."""
    return (2.0 * blocks) ** 0.25, (8.0 * blocks) ** -0.25


class TransformerBlock(nn.Module):
    """Attention and MLP branches, each with a skip, normed and scaled per ``position``."""

    def __init__(
        self,
        attention: SelfAttention,
        mlp: nn.Module,
        norms: tuple[nn.Module, nn.Module] | None,
        position: str,
        skip_gain: float,
        scale: float | None,
        dropout: float,
    ) -> None:
        super().__init__()
        self.attention, self.mlp = attention, mlp
        self.norm1, self.norm2 = norms if norms is not None else (nn.Identity(), nn.Identity())
        self.position, self.skip_gain = position, skip_gain
        self.scales: list[float] | nn.ParameterList
        if scale is None:  # rezero / skipinit: learnable, starting at 0
            self.scales = nn.ParameterList([nn.Parameter(torch.zeros(())) for _ in range(2)])
        else:
            self.scales = [scale, scale]
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.observer: BlockObserver | None = None

    def forward(self, x: Tensor) -> Tensor:
        x = self._branch(0, x, self.attention, self.norm1)
        return self._branch(1, x, self.mlp, self.norm2)

    def _branch(self, i: int, x: Tensor, f: nn.Module, norm: nn.Module) -> Tensor:
        s = self.scales[i]
        update = self.drop(f(norm(x) if self.position == "pre" else x))
        if not isinstance(s, float) or s != 1.0:  # (a product costs time in tiny models)
            update = s * update
        skip = x * self.skip_gain if self.skip_gain != 1.0 else x
        out = norm(skip + update) if self.position == "post" else skip + update
        if self.observer is not None:
            self.observer(i, skip.detach(), update.detach(), out.detach())
        result: Tensor = out
        return result


def _norm(kind: str, d: int) -> nn.Module:
    return nn.RMSNorm(d, eps=1e-6) if kind == "rms_norm" else nn.LayerNorm(d)


def _attention(b: _Builder, layer: SelfAttentionLayer | TransformerBlockLayer, shape: Shape,
               name: str) -> SelfAttention:
    steps, d = shape
    module = SelfAttention(d, layer.heads, steps, layer.causal, layer.qk_norm)
    if b.init.scheme != "default":
        with torch.no_grad():
            for chunk in module.qkv.weight.chunk(3, dim=0):  # Q, K and V each on its own
                b.init_tensor(chunk, b.gain(None))
        b.init_tensor(module.out.weight, b.gain(None))
    b.init_bias(module.qkv.bias)
    b.init_bias(module.out.bias)
    b.weight_names[id(module.qkv)] = f"{name}.qkv"
    b.weight_names[id(module.out)] = f"{name}.out"
    return module


def _gated(b: _Builder, d: int, hidden: int, out: int, activation: ActivationName,
           name: str) -> GatedMLP:
    feeds = ActivationLayer(name=activation)
    module = GatedMLP(d, hidden, out, b._activation(feeds, f"{name}.act"))
    b.init_weight(module.gate_up, feeds)
    b.init_weight(module.down, None)
    b.weight_names[id(module.gate_up)] = f"{name}.gate_up"
    b.weight_names[id(module.down)] = f"{name}.down"
    return module


def _plain(b: _Builder, d: int, hidden: int, activation: ActivationName,
           name: str) -> nn.Sequential:
    feeds = ActivationLayer(name=activation)
    first, last = nn.Linear(d, hidden), nn.Linear(hidden, d)
    b.init_weight(first, feeds)
    b.init_weight(last, None)
    b.weight_names[id(first)] = f"{name}.in"
    b.weight_names[id(last)] = f"{name}.out"
    return nn.Sequential(first, b._activation(feeds, f"{name}.act"), last)


@torch.no_grad()
def _deepnorm_init(block: TransformerBlock, beta: float) -> None:
    """Xavier-normal: Q and K with gain 1; V, the output projection and the MLP with beta."""
    q, k, v = block.attention.qkv.weight.chunk(3, dim=0)
    for w, gain in ((q, 1.0), (k, 1.0), (v, beta), (block.attention.out.weight, beta)):
        nn.init.xavier_normal_(w, gain=gain)
    for m in block.mlp.modules():
        if isinstance(m, nn.Linear):
            nn.init.xavier_normal_(m.weight, gain=beta)


def _block(b: _Builder, layer: TransformerBlockLayer, shape: Shape, name: str) -> nn.Module:
    d = shape[-1]
    attention = _attention(b, layer, shape, f"{name}.attention")
    hidden = layer.mlp_hidden(d)
    mlp = (_gated(b, d, hidden, d, layer.activation, f"{name}.mlp") if layer.mlp == "gated"
           else _plain(b, d, hidden, layer.activation, f"{name}.mlp"))
    norms = None if layer.norm_position == "none" else (_norm(layer.norm, d), _norm(layer.norm, d))
    alpha, beta = deepnorm_constants(max(1, b.transformer_blocks))
    rule = layer.residual_scale
    block = TransformerBlock(
        attention, mlp, norms, layer.norm_position,
        skip_gain=alpha if rule == "deepnorm" else 1.0,
        scale=None if rule in ("rezero", "skipinit") else (1.0 if rule == "deepnorm"
                                                            else float(rule)),
        dropout=layer.dropout,
    )
    if rule == "deepnorm":
        _deepnorm_init(block, beta)
    return block


def build_transformer_layer(b: _Builder, layer: Layer, shape: Shape,
                            name: str) -> tuple[nn.Module, Shape]:
    """The module of one attention-layer type, and its output shape."""
    if isinstance(layer, EmbeddingLayer):
        table = nn.Linear(shape[-1], layer.dim, bias=False)
        with torch.no_grad():
            nn.init.normal_(table.weight, 0.0, 1.0)  # as nn.Embedding
        b.weight_names[id(table)] = name
        return table, (shape[0], layer.dim)
    if isinstance(layer, PositionalEncodingLayer):
        return PositionalEncoding(layer.kind, shape[0], shape[1]), shape
    if isinstance(layer, SelfAttentionLayer):
        return _attention(b, layer, shape, name), shape
    if isinstance(layer, RMSNormLayer):
        return _norm("rms_norm", shape[-1]), shape
    if isinstance(layer, GatedMLPLayer):
        out = layer.out or shape[-1]
        return _gated(b, shape[-1], layer.hidden, out, layer.activation, name), (*shape[:-1], out)
    if isinstance(layer, SequencePoolLayer):
        return SequencePool(layer.mode), (shape[-1],)
    assert isinstance(layer, TransformerBlockLayer)
    return _block(b, layer, shape, name), shape


def branch_scale(block: TransformerBlock, i: int) -> float:
    s = block.scales[i]
    return float(s) if isinstance(s, float) else float(s.detach())
