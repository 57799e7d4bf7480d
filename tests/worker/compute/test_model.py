"""Model builder and initialization against the spec and the schemes' definitions; residual
projections, LSTM forget bias, orthogonal init per gate, and FLOPs against torch's counter."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from tests.worker.conftest import FLATTEN, IMG, SEQ, VEC, act, conv, layers, lin, make, res
from worker.compute.layers import Residual
from worker.compute.model import build_model
from worker.core.spec import ExperimentSpec, analyze, parameter_count


@pytest.mark.parametrize("normalization", ["none", "batch", "layer"])
@pytest.mark.parametrize(
    "data",
    [{"kind": "spirals"}, {"kind": "digits"}, {"kind": "teacher", "input_dim": 9, "output_dim": 3}],
)
def test_parameter_count_matches_built_model(spec_factory, normalization, data):
    spec = spec_factory(model={"depth": 4, "width": 10, "normalization": normalization}, data=data)
    model = build_model(spec)
    assert parameter_count(spec) == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize(
    ("scheme", "gain", "activation", "expected_std"),
    [
        ("normal", 2.0, "relu", lambda fi, fo: 2.0 / math.sqrt(fi)),
        ("kaiming_normal", None, "relu", lambda fi, fo: math.sqrt(2.0 / fi)),
        ("kaiming_uniform", None, "tanh", lambda fi, fo: 5 / 3 / math.sqrt(fi)),
        ("xavier_normal", None, "tanh", lambda fi, fo: math.sqrt(2.0 / (fi + fo))),
        ("xavier_uniform", 1.5, "tanh", lambda fi, fo: 1.5 * math.sqrt(2.0 / (fi + fo))),
        ("default", None, "relu", lambda fi, fo: 1 / math.sqrt(3 * fi)),
    ],
)
def test_init_weight_std(spec_factory, scheme, gain, activation, expected_std):
    torch.manual_seed(0)
    init = {"scheme": scheme, **({"gain": gain} if gain else {})}
    spec = spec_factory(
        model={"depth": 2, "width": 400, "activation": activation},
        init=init,
        data={"kind": "teacher", "input_dim": 300, "output_dim": 4},
    )
    model = build_model(spec)
    w = model.layers[2].weight.detach()
    assert float(w.std()) == pytest.approx(expected_std(400, 400), rel=0.02)
    if scheme != "default":
        assert float(model.layers[2].bias.detach().abs().max()) == 0.0


def test_bias_std(spec_factory):
    torch.manual_seed(0)
    spec = spec_factory(
        model={"depth": 2, "width": 2000}, init={"scheme": "normal", "bias_std": 0.3}
    )
    model = build_model(spec)
    assert float(model.layers[2].bias.detach().std()) == pytest.approx(0.3, rel=0.05)


def test_residual_skips_all_but_the_first_block(spec_factory):
    spec = spec_factory(model={"depth": 3, "width": 8, "residual": True, "normalization": "layer"})
    layers = analyze(spec).layers
    assert [entry.type for entry in layers] == [
        "linear",
        "layer_norm",
        "activation",
        "residual",
        "residual",
    ]
    model = build_model(spec)
    x = torch.randn(5, 2)
    h1 = model.layers[2](model.layers[1](model.layers[0](x)))
    res = model.layers[3]
    assert torch.allclose(res(h1), h1 + res.body(h1))
    assert isinstance(res.projection, torch.nn.Identity)


@pytest.mark.usefixtures("one_thread")
def test_residual_projections_have_the_right_shapes():
    vec = build_model(make(layers(lin(8), res(lin(12), act("relu"))), VEC))
    block = vec.layers[1]
    assert isinstance(block, Residual) and isinstance(block.projection, nn.Linear)
    assert tuple(block.projection.weight.shape) == (12, 8)
    h = torch.randn(3, 8)
    torch.testing.assert_close(block(h), block.projection(h) + block.body(h))

    img = build_model(
        make(
            layers(conv(4, padding=1), res(conv(8, stride=2, padding=1), act("relu")), FLATTEN), IMG
        )
    )
    block = img.layers[1]
    proj = block.projection
    assert isinstance(proj, nn.Conv2d)
    assert tuple(proj.weight.shape) == (8, 4, 1, 1) and proj.stride == (2, 2)
    h = torch.randn(2, 4, 8, 8)
    assert proj(h).shape == block.body(h).shape == (2, 8, 4, 4)
    torch.testing.assert_close(block(h), proj(h) + block.body(h))

    same = build_model(make(layers(lin(8), res(lin(8), act("relu"))), VEC))
    assert isinstance(same.layers[1].projection, nn.Identity)


@pytest.mark.usefixtures("one_thread")

def test_lstm_forget_bias_sets_the_forget_gate_slice():
    spec = make(
        {"family": "lstm", "depth": 1, "width": 6},
        SEQ,
        init={"scheme": "normal", "lstm_forget_bias": 2.5},
    )
    torch.manual_seed(0)
    ((_, lstm),) = build_model(spec).recurrent_layers()
    w_ih, w_hh, b_ih, b_hh = lstm.parameters_l0()
    h = 6
    assert torch.all(b_ih[h : 2 * h] == 2.5)
    assert torch.all(b_hh[h : 2 * h] == 0.0)
    other = torch.cat([b_ih[:h], b_ih[2 * h :], b_hh[:h], b_hh[2 * h :]])
    assert torch.all(other == 0.0)  # scheme 'normal' zeroes the other biases
    # The slice really is the forget gate: with zero weights, f_t = sigmoid(2.5) everywhere.
    with torch.no_grad():
        w_ih.zero_()
        w_hh.zero_()
    lstm.unrolled = True
    lstm(torch.randn(2, 4, 2))
    gates = torch.stack(lstm.forget_gates)
    torch.testing.assert_close(gates, torch.full_like(gates, 1 / (1 + math.exp(-2.5))))


@pytest.mark.usefixtures("one_thread")

@pytest.mark.parametrize("kind", ["rnn", "gru", "lstm"])
def test_orthogonal_init_is_orthogonal_per_gate(kind):
    gain = 1.7
    spec = make(
        {"family": kind, "depth": 1, "width": 6}, SEQ, init={"scheme": "orthogonal", "gain": gain}
    )
    torch.manual_seed(0)
    ((_, layer),) = build_model(spec).recurrent_layers()
    w_ih, w_hh, _, _ = layer.parameters_l0()
    gates = {"rnn": 1, "gru": 3, "lstm": 4}[kind]
    for chunk in w_hh.detach().double().chunk(gates, dim=0):  # square: W^T W = gain^2 I
        torch.testing.assert_close(
            chunk.T @ chunk, gain**2 * torch.eye(6, dtype=torch.float64), atol=1e-5, rtol=0
        )
    for chunk in w_ih.detach().double().chunk(gates, dim=0):  # 6x2: orthonormal columns
        torch.testing.assert_close(
            chunk.T @ chunk, gain**2 * torch.eye(2, dtype=torch.float64), atol=1e-5, rtol=0
        )


@pytest.mark.usefixtures("one_thread")

def test_orthogonal_init_of_square_linear_layers():
    spec = make({"depth": 3, "width": 8}, VEC, init={"scheme": "orthogonal", "gain": 0.5})
    torch.manual_seed(0)
    w = build_model(spec).layers[2].weight.detach().double()  # the second 8x8 linear
    torch.testing.assert_close(w.T @ w, 0.25 * torch.eye(8, dtype=torch.float64), atol=1e-6, rtol=0)



def torch_flops(spec: ExperimentSpec) -> int:
    """Forward FLOPs of one example, counted by torch's own flop counter (matmuls/convs)."""
    torch.manual_seed(0)
    model = build_model(spec).eval()
    x = torch.zeros(1, *analyze(spec).data.input_shape)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


@pytest.mark.usefixtures("one_thread")

def test_flops_of_linear_layers():
    spec = make(layers(lin(8), lin(5)), VEC)
    by_hand = 2 * 2 * 8 + 2 * 8 * 5 + 2 * 5 * 2  # 2 * n_in * n_out per linear (and the head)
    assert analyze(spec).flops_per_example == by_hand == torch_flops(spec)


@pytest.mark.usefixtures("one_thread")

def test_flops_of_conv_layers():
    spec = make(
        layers(
            conv(4, kernel_size=3, stride=1), conv(3, kernel_size=3, stride=2, padding=1), FLATTEN
        ),
        IMG,
    )
    # 8x8 -> 6x6 (k3) -> 3x3 (k3, s2, p1); 2 * c_in * k^2 * c_out per output position
    by_hand = 2 * 1 * 9 * 4 * 6 * 6 + 2 * 4 * 9 * 3 * 3 * 3 + 2 * 27 * 10
    assert analyze(spec).flops_per_example == by_hand == torch_flops(spec)
