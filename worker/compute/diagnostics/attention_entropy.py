"""Attention entropy per head and layer, and the scale of the softmax's logits.

For each attention layer and head: the entropy -sum_j p_ij log p_ij of each query's attention
row, averaged over queries and the probe batch, beside its largest possible value (the mean of
log(keys a row may see): log T, or log(t + 1) for query t under a causal mask) and the ratio of
the two. Entropy collapse (Zhai et al. 2023, arXiv 2303.06296), every row attending to one key,
drives the ratio to 0 and goes with unstable training; it follows large logits, so each head's
logit scale is reported too: the standard deviation of the scaled logits Q K^T / sqrt(d_head)
over the entries a query may see. QK-norm bounds that scale.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from worker.compute.diagnostics.attention_trace import TracedDiagnostic, attention_layers
from worker.compute.diagnostics.base import BuildContext, ReportContext
from worker.compute.model import Net


def head_entropy(probs: Tensor, mask: Tensor | None) -> tuple[list[float], float]:
    """Mean row entropy per head, and the mean of the rows' largest entropy (nats)."""
    batch, _, queries, steps = probs.shape
    # Masked entries are exact zeros (entr(0) = 0), so every entry is summed without picking
    # the visible ones (a copy); a mean over rows of row sums is the sum / rows. The sum
    # accumulates in float64.
    entropy = torch.special.entr(probs).sum(dim=(0, 2, 3), dtype=torch.float64) / (batch * queries)
    keys = (~mask).sum(dim=-1).double() if mask is not None else probs.new_full((steps,), steps)
    return entropy.tolist(), float(keys.double().log().mean())


def logit_scale(logits: Tensor, mask: Tensor | None) -> list[float]:
    """Standard deviation of the logits a query may see, per head."""
    visible = logits.flatten(2) if mask is None else logits[:, :, ~mask]  # (batch, heads, n)
    return visible.double().var(dim=(0, 2), unbiased=False).sqrt().tolist()


class AttentionEntropy(TracedDiagnostic):
    """Row entropy per head and layer, its maximum, and the logit scale, at each probe."""

    name = "attention_entropy"

    def __init__(self, model: Net, layers: list[str]) -> None:
        super().__init__(model)
        self.layers = layers

    def begin(self, step: int) -> None:
        self.current = {"step": step, "layers": [None] * len(self.layers)}

    def on_attention(self, layer: int, logits: Tensor, probs: Tensor, mask: Tensor | None) -> None:
        entropy, most = head_entropy(probs, mask)
        self.current["layers"][layer] = {
            "layer": self.layers[layer], "entropy": entropy, "max_entropy": most,
            "normalized": [e / most if most > 0 else None for e in entropy],
            "logit_std": logit_scale(logits, mask),
        }

    def report(self, ctx: ReportContext) -> None:
        lowest = None
        if self.records:
            values = [v for layer in self.records[-1]["layers"] for v in layer["normalized"]
                      if v is not None and math.isfinite(v)]
            lowest = min(values) if values else None
        ctx.section(self.name)[self.name] = {
            "layers": self.layers, "probes": self.records, "min_normalized_at_end": lowest}


def build(ctx: BuildContext) -> AttentionEntropy | None:
    """None for a model without attention."""
    layers = attention_layers(ctx.model)
    return AttentionEntropy(ctx.model, [name for name, _ in layers]) if layers else None
