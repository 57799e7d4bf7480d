"""Slope coverage, saturation, dead units and E[phi'^2] against closed forms."""

from __future__ import annotations

import math
from typing import get_args

import pytest
import torch
import torch.nn.functional as F

from worker.compute.activations import get_activation
from worker.compute.diagnostics.capture import capture
from worker.compute.diagnostics.slope import SlopeStats
from worker.compute.model import build_model
from worker.core.spec import ActivationLayer, ActivationName

ALL = list(get_args(ActivationName))
N = 200_000


def _normal_cdf(x: float) -> float:
    return 0.5 * (1 + math.erf(x / math.sqrt(2)))


@pytest.mark.parametrize("name", ALL)
def test_closed_form_derivative_matches_autograd(name):
    act = get_activation(ActivationLayer(name=name, negative_slope=0.05, frequency=2.5))
    z = torch.linspace(-6, 6, 2001, dtype=torch.float64, requires_grad=True)
    (auto,) = torch.autograd.grad(act.module()(z).sum(), z)
    # kinks and jumps (relu at 0, triangle at its peaks, sawtooth at its drops): autograd picks
    # one side there, so compare away from them
    mask = z.detach().abs() > 1e-9
    if name in ("triangle", "sawtooth"):
        t = 2.5 * z.detach() / (2 * math.pi)
        mask &= ((t + 0.25) - torch.round(t + 0.25)).abs() > 1e-6
        mask &= ((t + 0.5) - torch.round(t + 0.5)).abs() > 1e-6
        mask &= (t - torch.round(t)).abs() > 1e-6
    assert torch.allclose(act.derivative(z.detach())[mask], auto[mask], atol=1e-12)
    # the declared max|phi'| bounds the slope and is reached (or approached: softplus, selu)
    grid_max = float(auto.abs().max())
    assert grid_max <= act.max_abs_derivative * (1 + 1e-9)
    assert grid_max >= 0.99 * act.max_abs_derivative


def _identity_net(spec_factory, activation, width=8, bias=0.0):
    """One block whose linear layer is the identity, so the pre-activations equal the input."""
    spec = spec_factory(
        model={"depth": 1, "width": width, "activation": activation},
        data={"kind": "teacher", "input_dim": width, "output_dim": 2},
    )
    model = build_model(spec)
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.eye(width))
        model.layers[0].bias.fill_(bias)
    return model


def _slope(model, x, tau=0.1, activation="relu"):
    y = torch.zeros(x.shape[0], dtype=torch.long)
    cap = capture(model, F.cross_entropy, x, y, step=0)
    act = get_activation(ActivationLayer(name=activation))
    return SlopeStats([act], tau).compute(cap)["nonlinearities"][0]


def test_sigmoid_coverage_on_gaussian_preactivations(spec_factory):
    """sigma'(z) >= tau/4 iff |z| <= z*, sigma(z*) = (1 + sqrt(1 - tau)) / 2; z ~ N(0, s^2)."""
    torch.manual_seed(0)
    s, tau = 3.0, 0.1
    model = _identity_net(spec_factory, "sigmoid", width=4)
    stats = _slope(model, s * torch.randn(N // 4, 4), tau, "sigmoid")
    p = (1 + math.sqrt(1 - tau)) / 2
    z_star = math.log(p / (1 - p))
    expected = 2 * _normal_cdf(z_star / s) - 1
    assert stats["slope_coverage"] == pytest.approx(expected, abs=0.01)
    assert stats["saturated_share"] == pytest.approx(1 - expected, abs=0.01)
    assert stats["dead_unit_share"] is None


def test_relu_on_gaussian_preactivations(spec_factory):
    """z ~ N(0,1): half the entries have slope 1, E[relu'(z)^2] = 1/2, no unit dead."""
    torch.manual_seed(0)
    model = _identity_net(spec_factory, "relu")
    stats = _slope(model, torch.randn(N // 8, 8))
    assert stats["slope_coverage"] == pytest.approx(0.5, abs=0.01)
    assert stats["mean_sq_derivative"] == pytest.approx(0.5, abs=0.01)
    assert stats["dead_unit_share"] == 0.0
    assert stats["saturated_share"] is None


def test_tanh_mean_sq_derivative_matches_gauss_hermite(spec_factory):
    """E[(1 - tanh(z)^2)^2] for z ~ N(0,1), by Gauss-Hermite quadrature."""
    import numpy as np

    torch.manual_seed(0)
    model = _identity_net(spec_factory, "tanh")
    stats = _slope(model, torch.randn(N // 8, 8), activation="tanh")
    nodes, weights = np.polynomial.hermite_e.hermegauss(80)
    expected = float((weights * (1 - np.tanh(nodes) ** 2) ** 2).sum() / math.sqrt(2 * math.pi))
    assert stats["mean_sq_derivative"] == pytest.approx(expected, rel=0.01)


def test_dead_units_are_units_inactive_on_every_example(spec_factory):
    """Units with a bias of -100 never activate on standard-normal inputs: 3 of 8 dead."""
    torch.manual_seed(0)
    model = _identity_net(spec_factory, "relu")
    with torch.no_grad():
        model.layers[0].bias[:3] = -100.0
    stats = _slope(model, torch.randn(512, 8))
    assert stats["dead_unit_share"] == pytest.approx(3 / 8)
    # coverage: dead units contribute nothing, live ones about half of their entries
    assert stats["slope_coverage"] == pytest.approx(5 / 8 * 0.5, abs=0.03)


def test_leaky_relu_negative_side_counts_as_low_slope(spec_factory):
    torch.manual_seed(0)
    model = _identity_net(spec_factory, "leaky_relu")
    stats = _slope(model, torch.randn(N // 8, 8), activation="leaky_relu")
    # slope 0.01 < tau * 1 on the negative side
    assert stats["slope_coverage"] == pytest.approx(0.5, abs=0.01)
    assert stats["mean_sq_derivative"] == pytest.approx(0.5 * (1 + 0.01**2), abs=0.01)


def _reference_stats(act, z, tau):
    """The definitions written out entry by entry, in float64, with the units axis moved last."""
    zd = z.double()
    d = act.derivative(zd).abs()
    units = zd.movedim(1, -1).reshape(-1, zd.shape[1]) if z.dim() == 4 else zd.reshape(
        -1, zd.shape[-1])
    return {
        "slope_coverage": float((d >= tau * act.max_abs_derivative).double().mean()),
        "dead_unit_share": float((units <= 0).all(dim=0).double().mean()),
        "mean_sq_derivative": float(d.pow(2).mean()),
    }


@pytest.mark.parametrize("name", ["relu", "tanh", "gelu", "leaky_relu", "sin"])
@pytest.mark.parametrize("shape", [(64, 16), (8, 5, 12), (6, 4, 3, 3)])
def test_slope_stats_match_the_definitions_in_float64(name, shape):
    """Every layout (features, sequences, image channels), dead units included: the float32
    statistics equal the float64 definitions (counts exactly)."""
    from worker.compute.diagnostics.slope import slope_stats

    act = get_activation(ActivationLayer(name=name, negative_slope=0.05, frequency=2.5))
    g = torch.Generator().manual_seed(7)
    z = torch.randn(shape, generator=g)
    z[..., 0] = -z[..., 0].abs() - 0.1  # a dead feature (every layout's last axis)
    if len(shape) == 4:
        z[:, 1] = -z[:, 1].abs()  # a dead channel
    got, want = slope_stats("l", act, z, 0.1), _reference_stats(act, z, 0.1)
    assert got["slope_coverage"] == want["slope_coverage"]
    assert got["mean_sq_derivative"] == pytest.approx(want["mean_sq_derivative"], rel=1e-6)
    if act.kind == "relu_like":
        assert got["dead_unit_share"] == want["dead_unit_share"]
        assert got["dead_unit_share"] > 0
    else:
        assert got["dead_unit_share"] is None


def test_relu_derivative_is_the_step_of_z_above_zero():
    """The same values as ``(z > 0)``, at the edges too (signed zero, tiny z, NaN)."""
    act = get_activation(ActivationLayer(name="relu"))
    z = torch.tensor([-2.0, -0.0, 0.0, 1e-30, 1e-45, 3.0, math.inf, -math.inf, math.nan])
    assert act.derivative(z).tolist() == (z > 0).float().tolist()
