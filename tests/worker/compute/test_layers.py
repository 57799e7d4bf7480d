"""The layers against independent references: fused vs unrolled recurrence, maxout as an
explicit max.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from worker.compute.layers import Maxout, Recurrent

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize("return_sequences", [False, True])
@pytest.mark.parametrize(
    ("kind", "nonlinearity"), [("rnn", "tanh"), ("rnn", "relu"), ("gru", "tanh"), ("lstm", "tanh")]
)
def test_unrolled_recurrence_equals_the_fused_module(kind, nonlinearity, return_sequences):
    torch.manual_seed(0)
    module = Recurrent(kind, 3, 5, return_sequences, nonlinearity).double()
    with torch.no_grad():  # nonzero biases so that every bias term is exercised
        for p in module.parameters():
            p.normal_(0.0, 0.5)
    x = torch.randn(4, 7, 3, dtype=torch.float64, requires_grad=True)
    fused = module(x)
    (g_fused,) = torch.autograd.grad(fused.square().sum(), x)
    module.unrolled = True
    unrolled = module(x)
    (g_unrolled,) = torch.autograd.grad(unrolled.square().sum(), x)
    assert fused.shape == ((4, 7, 5) if return_sequences else (4, 5))
    torch.testing.assert_close(unrolled, fused, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g_unrolled, g_fused, rtol=1e-10, atol=1e-12)
    assert len(module.states) == 7
    assert len(module.forget_gates) == (7 if kind == "lstm" else 0)
    assert len(module.preactivations) == (7 if kind == "rnn" else 0)


def test_maxout_is_the_max_over_separate_affine_maps():
    torch.manual_seed(0)
    n_in, out, pieces = 5, 4, 3
    m = Maxout(n_in, out, pieces).double()
    w = m.linear.weight.detach().view(out, pieces, n_in)
    b = m.linear.bias.detach().view(out, pieces)
    maps = []
    for k in range(pieces):  # piece k of every unit, as its own affine map
        piece = nn.Linear(n_in, out).double()
        with torch.no_grad():
            piece.weight.copy_(w[:, k])
            piece.bias.copy_(b[:, k])
        maps.append(piece)
    m.requires_grad_(False)
    x = torch.randn(6, n_in, dtype=torch.float64)
    expected = torch.stack([f(x) for f in maps]).max(dim=0).values
    torch.testing.assert_close(m(x), expected, rtol=1e-12, atol=1e-12)
    for i in range(6):  # and element by element, by hand
        for j in range(out):
            by_hand = max(float(w[j, k] @ x[i] + b[j, k]) for k in range(pieces))
            assert float(m(x)[i, j]) == pytest.approx(by_hand, rel=1e-12)
    seq = torch.randn(2, 3, n_in, dtype=torch.float64)  # maxout per step of a sequence
    torch.testing.assert_close(m(seq)[:, 1], m(seq[:, 1]))
