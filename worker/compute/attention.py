"""Torch modules of the attention layers: self-attention, positional encodings, the gated MLP and
the pool over steps (spec: ``worker/core/spec/transformer.py``).

Attention is written out (softmax(Q K^T / sqrt(d_head)) V), not PyTorch's fused kernel, so every
probe transform works on it: forward-mode Jacobians (local linearity, linearization gap),
per-example gradients (vmap) and Hessian-vector products (double backward), and so a probe can
observe the logits and probabilities (``observer``, set only while a probe runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

#: ``observer(logits, probs, mask)``: scaled logits and probabilities (batch, heads, steps,
#: steps), and the causal mask (True where a query may not look), None when not causal.
AttentionObserver = Callable[[Tensor, Tensor, Tensor | None], None]


def sinusoidal_table(steps: int, d: int) -> Tensor:
    """PE[p, 2i] = sin(p / 10000^(2i/d)), PE[p, 2i+1] = cos(p / 10000^(2i/d)) (Vaswani et al.
    2017), for p < steps; an odd d keeps the last sine column."""
    position = torch.arange(steps, dtype=torch.float64)[:, None]
    frequency = torch.exp(-math.log(10000.0) * torch.arange(0, d, 2, dtype=torch.float64) / d)
    table = torch.zeros(steps, d, dtype=torch.float64)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: d // 2])
    return table.float()


class PositionalEncoding(nn.Module):
    """Adds a learned (N(0, 1)) or sinusoidal steps x d table to a sequence."""

    def __init__(self, kind: str, steps: int, d: int) -> None:
        super().__init__()
        self.kind = kind
        self.table: Tensor | None
        if kind == "learned":
            self.table = nn.Parameter(torch.randn(steps, d))
        elif kind == "sinusoidal":
            self.register_buffer("table", sinusoidal_table(steps, d), persistent=False)
        else:
            self.table = None

    def forward(self, x: Tensor) -> Tensor:
        return x if self.table is None else x + self.table


class SelfAttention(nn.Module):
    """Multi-head self-attention over (batch, steps, d); no skip (a block adds one)."""

    def __init__(self, d: int, heads: int, steps: int, causal: bool, qk_norm: bool) -> None:
        super().__init__()
        self.heads, self.d_head = heads, d // heads
        self.qkv = nn.Linear(d, 3 * d)
        self.out = nn.Linear(d, d)
        self.q_norm = nn.LayerNorm(self.d_head) if qk_norm else None
        self.k_norm = nn.LayerNorm(self.d_head) if qk_norm else None
        self.mask: Tensor | None
        if causal:
            future = torch.ones(steps, steps, dtype=torch.bool).triu(1)
            self.register_buffer("mask", future, persistent=False)
        else:
            self.mask = None
        self.observer: AttentionObserver | None = None

    def forward(self, x: Tensor) -> Tensor:
        """(..., steps, d) -> (..., steps, d): any leading axes (a batch; K members, batched)."""
        *lead, steps, d = x.shape
        q, k, v = (
            t.view(*lead, steps, self.heads, self.d_head).transpose(-3, -2)
            for t in self.qkv(x).chunk(3, dim=-1)
        )
        if self.q_norm is not None and self.k_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        logits = q @ k.transpose(-2, -1) / math.sqrt(self.d_head)
        if self.mask is not None:
            logits = logits.masked_fill(self.mask, float("-inf"))
        probs = torch.softmax(logits, dim=-1)
        if self.observer is not None:
            self.observer(logits.detach(), probs.detach(), self.mask)
        y = (probs @ v).transpose(-3, -2).reshape(*lead, steps, d)
        out: Tensor = self.out(y)
        return out


class GatedMLP(nn.Module):
    """W2 (act(W1 x) * W3 x) without biases (W1 and W3 as one matrix)."""

    def __init__(self, d: int, hidden: int, out: int, act: nn.Module) -> None:
        super().__init__()
        self.gate_up = nn.Linear(d, 2 * hidden, bias=False)
        self.act = act
        self.down = nn.Linear(hidden, out, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        gate, up = self.gate_up(x).chunk(2, dim=-1)
        out: Tensor = self.down(self.act(gate) * up)
        return out


class SequencePool(nn.Module):
    """(..., steps, d) -> (..., d): the mean over steps or the last step."""

    def __init__(self, mode: str) -> None:
        super().__init__()
        self.mode = mode

    def forward(self, x: Tensor) -> Tensor:
        return x.mean(dim=-2) if self.mode == "mean" else x[..., -1, :]


def contains_attention(module: nn.Module) -> bool:
    return any(isinstance(m, SelfAttention) for m in module.modules())
