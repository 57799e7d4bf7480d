"""Model builder and initialization against the spec and the schemes' definitions."""

from __future__ import annotations

import math

import pytest
import torch

from worker.compute.model import build_model
from worker.core.spec import analyze, parameter_count


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
