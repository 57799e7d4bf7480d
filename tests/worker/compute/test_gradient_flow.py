"""Gradient-flow metrics against independent references (METRICS.md section 5)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from worker.compute.diagnostics.capture import capture
from worker.compute.diagnostics.gradient_flow import GradientFlow, verdict
from worker.compute.layers import Residual
from worker.compute.model import build_model


def mlp_blocks(model):
    """(weight, bias, residual) per hidden block of an mlp-family Net."""
    blocks, layers = [], list(model.layers)
    i = 0
    while i < len(layers):
        layer = layers[i]
        if isinstance(layer, Residual):
            blocks.append((layer.body[0].weight, layer.body[0].bias, True))
            i += 1
        else:
            blocks.append((layer.weight, layer.bias, False))
            i += 2  # linear, activation
    return blocks


def manual_block_grads(model, x, y, activation: str) -> list[torch.Tensor]:
    """dL/dh_l by an explicit chain rule in float64 (no autograd)."""
    phi = {"relu": torch.relu, "tanh": torch.tanh, "sigmoid": torch.sigmoid}[activation]
    dphi = {
        "relu": lambda z: (z > 0).double(),
        "tanh": lambda z: 1 - torch.tanh(z) ** 2,
        "sigmoid": lambda z: torch.sigmoid(z) * (1 - torch.sigmoid(z)),
    }[activation]
    blocks = mlp_blocks(model)
    hs, zs = [x.double()], []
    for w, b, residual in blocks:
        z = hs[-1] @ w.double().T + b.double()
        a = phi(z)
        zs.append(z)
        hs.append(hs[-1] + a if residual else a)
    logits = hs[-1] @ model.head.weight.double().T + model.head.bias.double()
    p = torch.softmax(logits, dim=1)
    # d(mean cross-entropy)/d logits = (softmax - onehot) / batch
    delta = (p - F.one_hot(y, logits.shape[1]).double()) / x.shape[0]
    g = delta @ model.head.weight.double()  # dL/dh_L
    grads = [g]
    for i in range(len(blocks) - 1, 0, -1):
        w, _, residual = blocks[i]
        back = (g * dphi(zs[i])) @ w.double()
        g = g + back if residual else back
        grads.append(g)
    return grads[::-1]


def rms(t):
    return math.sqrt(float((t.double() ** 2).mean()))


@pytest.mark.parametrize("activation", ["relu", "tanh", "sigmoid"])
@pytest.mark.parametrize("residual", [False, True])
def test_activation_grad_rms_matches_explicit_chain_rule(spec_factory, activation, residual):
    torch.manual_seed(3)
    spec = spec_factory(
        model={"depth": 4, "width": 7, "activation": activation, "residual": residual},
        init={"scheme": "normal", "gain": 1.3, "bias_std": 0.1},
        data={"kind": "teacher", "input_dim": 5, "output_dim": 3},
    )
    model = build_model(spec).double()
    x = torch.randn(11, 5, dtype=torch.float64)
    y = torch.randint(0, 3, (11,))
    cap = capture(model, F.cross_entropy, x, y, step=0)
    result = GradientFlow().compute(cap)
    with torch.no_grad():
        reference = [rms(g) for g in manual_block_grads(model, x, y, activation)]
    assert result["activation_grad_rms"] == pytest.approx(reference, rel=1e-10)
    ref_gains = [a / b for a, b in zip(reference[:-1], reference[1:], strict=True)]
    assert result["gains"] == pytest.approx(ref_gains, rel=1e-10)
    assert result["end_to_end_ratio"] == pytest.approx(reference[0] / reference[-1], rel=1e-10)
    geo = math.exp(sum(map(math.log, ref_gains)) / len(ref_gains))
    assert result["gain_geomean"] == pytest.approx(geo, rel=1e-10)
    assert result["gain_db"] == pytest.approx(20 * math.log10(geo), rel=1e-9)


def test_weight_norms_match_finite_differences(spec_factory):
    """||dL/dW|| against central finite differences on every weight entry (tiny net)."""
    torch.manual_seed(1)
    spec = spec_factory(
        model={"depth": 2, "width": 3, "activation": "tanh"}, init={"scheme": "normal", "gain": 1.0}
    )
    model = build_model(spec).double()
    x = torch.randn(6, 2, dtype=torch.float64)
    y = torch.randint(0, 2, (6,))
    result = GradientFlow().compute(capture(model, F.cross_entropy, x, y, step=0))
    eps = 1e-6
    for k, (_, w) in enumerate(model.weight_layers()):
        fd = torch.zeros_like(w)
        with torch.no_grad():
            for idx in torch.cartesian_prod(*(torch.arange(s) for s in w.shape)):
                i, j = int(idx[0]), int(idx[1])
                old = float(w[i, j])
                w[i, j] = old + eps
                up = float(F.cross_entropy(model(x), y))
                w[i, j] = old - eps
                down = float(F.cross_entropy(model(x), y))
                w[i, j] = old
                fd[i, j] = (up - down) / (2 * eps)
        assert result["weight_grad_norm"][k] == pytest.approx(float(fd.norm()), rel=1e-6)
        w_norm = float(w.detach().norm())
        assert result["weight_norm"][k] == pytest.approx(w_norm, rel=1e-12)
        assert result["grad_to_weight_ratio"][k] == pytest.approx(
            float(fd.norm()) / w_norm, rel=1e-6
        )


def _deep_probe(spec_factory, activation, scheme, gain, depth=10, width=512, n=512):
    torch.manual_seed(0)
    init = {"scheme": scheme} if gain is None else {"scheme": scheme, "gain": gain}
    spec = spec_factory(
        model={"depth": depth, "width": width, "activation": activation},
        init=init,
        data={"kind": "teacher", "input_dim": width, "output_dim": 10},
    )
    model = build_model(spec)
    x = torch.randn(n, width)
    y = torch.randint(0, 10, (n,))
    return GradientFlow().compute(capture(model, F.cross_entropy, x, y, step=0))


@pytest.mark.parametrize("g", [0.5, 1.0, 2.0])
def test_deep_linear_net_gain_is_g(spec_factory, g):
    """Theory: with W ~ N(0, g^2/fan_in) and equal widths, E||W^T v||^2 = g^2 ||v||^2."""
    result = _deep_probe(spec_factory, "identity", "normal", g)
    assert result["gain_geomean"] == pytest.approx(g, rel=0.05)
    assert all(gi == pytest.approx(g, rel=0.15) for gi in result["gains"])
    assert result["end_to_end_ratio"] == pytest.approx(g**9, rel=0.4)


def test_relu_he_init_gain_is_one(spec_factory):
    """Theory: ReLU with N(0, 2/fan_in) keeps E[g_l^2] constant, i.e. gain 1 (He et al. 2015)."""
    result = _deep_probe(spec_factory, "relu", "kaiming_normal", None)
    assert result["gain_geomean"] == pytest.approx(1.0, abs=0.08)
    assert result["verdict"] == "healthy"


def test_deep_sigmoid_at_default_init_vanishes(spec_factory):
    """sigma' <= 1/4 and PyTorch's default weights have variance 1/(3 fan_in): gain << 1."""
    result = _deep_probe(spec_factory, "sigmoid", "default", None, depth=12, width=64)
    assert result["gain_geomean"] < 0.3
    assert result["verdict"] == "vanishing"


def test_verdict_thresholds():
    assert verdict(5e-3, 1e-2, 1e2) == "vanishing"
    assert verdict(0.5, 1e-2, 1e2) == "healthy"
    assert verdict(5e2, 1e-2, 1e2) == "exploding"
    assert verdict(float("inf"), 1e-2, 1e2) == "exploding"
