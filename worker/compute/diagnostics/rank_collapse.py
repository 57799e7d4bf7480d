"""Rank collapse: whether attention makes the tokens of a sequence alike.

Per block output h (batch, steps, d): the mean pairwise cosine of the token representations,
(1 / (T (T - 1))) sum over i != j of cos(h_i, h_j), averaged over the probe batch; and Dong et
al.'s relative residual ||h - 1 mean(h)^T||_F / ||h||_F, the distance to the nearest rank-one
(all tokens equal) sequence. Pure attention without skips loses rank doubly exponentially with
depth (Dong et al. 2021, arXiv 2103.03404): cosine -> 1, residual -> 0; skip connections keep
the rank (Noci et al. 2022, arXiv 2206.03126 for the role of scaling at initialization). The
sequence entering the first block is the reference (``input_cosine``).
"""

from __future__ import annotations

import math

from torch import Tensor

from worker.compute.diagnostics.attention_trace import TracedDiagnostic, attention_blocks
from worker.compute.diagnostics.base import BuildContext, ReportContext
from worker.compute.model import Net


def token_cosine(h: Tensor) -> Tensor:
    """Mean pairwise cosine over distinct token pairs, per example (NaN for one token)."""
    steps = h.shape[1]
    if steps < 2:
        return h.new_full((h.shape[0],), math.nan)
    u = h.double() / h.double().norm(dim=-1, keepdim=True).clamp_min(1e-30)
    gram = u @ u.transpose(1, 2)
    off_diagonal = gram.sum(dim=(1, 2)) - gram.diagonal(dim1=1, dim2=2).sum(dim=1)
    out: Tensor = off_diagonal / (steps * (steps - 1))
    return out


def relative_residual(h: Tensor) -> Tensor:
    """||h - 1 mean_t(h)^T||_F / ||h||_F per example: 0 when every token is the same."""
    h = h.double()
    centred = h - h.mean(dim=1, keepdim=True)
    out: Tensor = centred.flatten(1).norm(dim=1) / h.flatten(1).norm(dim=1).clamp_min(1e-30)
    return out


def _mean(t: Tensor) -> float | None:
    value = float(t.nanmean())
    return value if math.isfinite(value) else None


class RankCollapse(TracedDiagnostic):
    """Token cosine and relative residual after each attention block, at each probe."""

    name = "rank_collapse"

    def __init__(self, model: Net, blocks: list[str]) -> None:
        super().__init__(model)
        self.blocks = blocks

    def begin(self, step: int) -> None:
        n = len(self.blocks)
        self.current = {"step": step, "input_cosine": None, "input_relative_residual": None,
                        "cosine": [None] * n, "relative_residual": [None] * n}

    def on_input(self, h: Tensor) -> None:
        self.current["input_cosine"] = _mean(token_cosine(h))
        self.current["input_relative_residual"] = _mean(relative_residual(h))

    def on_block(self, index: int, h: Tensor) -> None:
        self.current["cosine"][index] = _mean(token_cosine(h))
        self.current["relative_residual"][index] = _mean(relative_residual(h))

    def report(self, ctx: ReportContext) -> None:
        ctx.section(self.name)[self.name] = {"blocks": self.blocks, "probes": self.records}


def build(ctx: BuildContext) -> RankCollapse | None:
    """None for a model without attention."""
    blocks = attention_blocks(ctx.model)
    return RankCollapse(ctx.model, [name for name, _ in blocks]) if blocks else None
