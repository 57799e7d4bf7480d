"""Torch modules for the layer types that PyTorch does not provide as one module."""

from __future__ import annotations

from typing import Literal, cast

import torch
from torch import Tensor, nn


class Maxout(nn.Module):
    """``pieces`` affine maps to ``out`` units; each unit keeps the largest (Goodfellow 2013)."""

    def __init__(self, n_in: int, out: int, pieces: int) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, out * pieces)
        self.out, self.pieces = out, pieces

    def forward(self, x: Tensor) -> Tensor:
        z: Tensor = self.linear(x)
        return z.view(*z.shape[:-1], self.out, self.pieces).amax(dim=-1)


class Residual(nn.Module):
    """``projection(h) + body(h)``; the projection is the identity when shapes agree."""

    def __init__(self, body: nn.Sequential, projection: nn.Module | None) -> None:
        super().__init__()
        self.body = body
        self.projection = projection if projection is not None else nn.Identity()

    def forward(self, h: Tensor) -> Tensor:
        out: Tensor = self.projection(h) + self.body(h)
        return out


RecurrentKind = Literal["rnn", "gru", "lstm"]


class Recurrent(nn.Module):
    """A single-layer RNN/GRU/LSTM over (batch, steps, features).

    Training uses PyTorch's fused implementation. Probes switch on ``unrolled``: the same
    weights then run step by step in Python, so every hidden state h_t is a node of the graph
    (its gradient dL/dh_t counts every path through later steps) and the LSTM's forget gates
    and the vanilla RNN's pre-activations can be observed. Both paths compute the same function
    (tested against each other).
    """

    def __init__(
        self,
        kind: RecurrentKind,
        n_in: int,
        hidden: int,
        return_sequences: bool,
        nonlinearity: Literal["tanh", "relu"] = "tanh",
    ) -> None:
        super().__init__()
        self.kind = kind
        self.hidden = hidden
        self.return_sequences = return_sequences
        self.nonlinearity = nonlinearity
        self.cell: nn.RNNBase
        if kind == "rnn":
            self.cell = nn.RNN(n_in, hidden, nonlinearity=nonlinearity, batch_first=True)
        elif kind == "gru":
            self.cell = nn.GRU(n_in, hidden, batch_first=True)
        else:
            self.cell = nn.LSTM(n_in, hidden, batch_first=True)
        self.unrolled = False
        self.states: list[Tensor] = []  # h_1..h_T of the last unrolled forward
        self.forget_gates: list[Tensor] = []  # LSTM f_t, detached
        self.preactivations: list[Tensor] = []  # vanilla RNN z_t, detached

    def forward(self, x: Tensor) -> Tensor:
        if self.unrolled:
            seq = self._unrolled(x)
        else:
            seq, _ = self.cell(x)
        return seq if self.return_sequences else seq[:, -1]

    def parameters_l0(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """W_ih, W_hh, b_ih, b_hh of the (single) layer, gates stacked along dim 0."""
        c = self.cell
        return (
            cast(Tensor, c.weight_ih_l0),
            cast(Tensor, c.weight_hh_l0),
            cast(Tensor, c.bias_ih_l0),
            cast(Tensor, c.bias_hh_l0),
        )

    def _unrolled(self, x: Tensor) -> Tensor:
        w_ih, w_hh, b_ih, b_hh = self.parameters_l0()
        batch, steps, _ = x.shape
        h = x.new_zeros(batch, self.hidden)
        cell_state = x.new_zeros(batch, self.hidden)
        self.states, self.forget_gates, self.preactivations = [], [], []
        x_proj = x @ w_ih.T + b_ih  # all steps at once: (batch, steps, gates * hidden)
        for t in range(steps):
            gi, gh = x_proj[:, t], h @ w_hh.T + b_hh
            if self.kind == "rnn":
                z = gi + gh
                self.preactivations.append(z.detach())
                h = torch.tanh(z) if self.nonlinearity == "tanh" else torch.relu(z)
            elif self.kind == "gru":
                i_r, i_z, i_n = gi.chunk(3, dim=1)
                h_r, h_z, h_n = gh.chunk(3, dim=1)
                r = torch.sigmoid(i_r + h_r)
                upd = torch.sigmoid(i_z + h_z)
                n = torch.tanh(i_n + r * h_n)
                h = (1 - upd) * n + upd * h
            else:
                i_i, i_f, i_g, i_o = (gi + gh).chunk(4, dim=1)
                f = torch.sigmoid(i_f)
                self.forget_gates.append(f.detach())
                cell_state = f * cell_state + torch.sigmoid(i_i) * torch.tanh(i_g)
                h = torch.sigmoid(i_o) * torch.tanh(cell_state)
            self.states.append(h)
        return torch.stack(self.states, dim=1)
