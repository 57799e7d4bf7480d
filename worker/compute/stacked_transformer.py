"""Stacked transformer layers: attention, positions, the gated MLP and the block, for K members
over ``[K, B, T, d]`` sequences.

Attention, the gated MLP and the block run their single model's own forward (written for any
leading axes) on stacked projections and norms, so the attention formula has one home
(``attention.py``) and each member computes what its single-seed run computes.
"""

from __future__ import annotations

from torch import Tensor, nn

from worker.compute.attention import GatedMLP, PositionalEncoding, SelfAttention
from worker.compute.stacked_layers import SLayerNorm, SLinear, Stacked
from worker.compute.transformer import TransformerBlock


class SPositional(Stacked):
    """A learned table per member; a sinusoidal one (the same for all) or none as it is."""

    table: Tensor

    def __init__(self, mods: list[PositionalEncoding]) -> None:
        super().__init__(len(mods))
        self.fixed: Tensor | None = None
        self.learned = mods[0].kind == "learned"
        if self.learned:
            tables = [m.table for m in mods if m.table is not None]
            self.stack("table", tables, (self.k, 1, *tables[0].shape))
        else:
            self.fixed = mods[0].table

    def forward(self, x: Tensor) -> Tensor:
        if self.learned:
            return x + self.table
        return x if self.fixed is None else x + self.fixed


class SAttention(SelfAttention):
    """``SelfAttention`` of K members over ``[K, B, T, d]``: its own forward (any leading axes)
    on stacked projections and query-key norms."""

    def __init__(self, mods: list[SelfAttention]) -> None:
        nn.Module.__init__(self)
        m = mods[0]
        self.heads, self.d_head, self.mask, self.observer = m.heads, m.d_head, m.mask, None
        self.qkv = SLinear([a.qkv for a in mods])  # type: ignore[assignment]
        self.out = SLinear([a.out for a in mods])  # type: ignore[assignment]
        self.q_norm = self.k_norm = None
        if m.q_norm is not None:
            self.q_norm = SLayerNorm([a.q_norm for a in mods if a.q_norm], "vec")  # type: ignore[assignment]
            self.k_norm = SLayerNorm([a.k_norm for a in mods if a.k_norm], "vec")  # type: ignore[assignment]


class SGatedMLP(GatedMLP):
    """``GatedMLP`` of K members: its own forward on stacked matrices."""

    def __init__(self, mods: list[GatedMLP]) -> None:
        nn.Module.__init__(self)
        self.gate_up = SLinear([g.gate_up for g in mods])  # type: ignore[assignment]
        self.act = mods[0].act
        self.down = SLinear([g.down for g in mods])  # type: ignore[assignment]


class SBlock(TransformerBlock):
    """``TransformerBlock`` of K members: its own forward on stacked branches and norms, with
    learnable (rezero, skipinit) scales stacked per member as ``[K, 1, 1, 1]``."""

    def __init__(self, mods: list[TransformerBlock], attention: nn.Module, mlp: nn.Module,
                 norms: tuple[nn.Module, nn.Module]) -> None:
        """``attention``, ``mlp`` and ``norms``: the stacked forms of the members' own."""
        nn.Module.__init__(self)
        m = mods[0]  # without dropout (``batched._stacked`` checks)
        self.attention = attention  # type: ignore[assignment]
        self.mlp, (self.norm1, self.norm2) = mlp, norms
        self.position, self.skip_gain, self.drop, self.observer = (
            m.position, m.skip_gain, nn.Identity(), None)
        self.scales = list(m.scales) if isinstance(m.scales, list) else self._stacked_scales(mods)

    def _stacked_scales(self, mods: list[TransformerBlock]) -> nn.ParameterList:
        self.stacked_scales = Stacked(len(mods))
        lists = [b.scales for b in mods if isinstance(b.scales, nn.ParameterList)]
        for i in range(2):
            self.stacked_scales.stack(f"scale{i}", [scales[i] for scales in lists],
                                      (len(mods), 1, 1, 1))
        return nn.ParameterList([getattr(self.stacked_scales, f"scale{i}") for i in range(2)])
