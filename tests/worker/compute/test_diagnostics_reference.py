"""Diagnostics against theory and brute force (METRICS.md section 5), on tiny seeded problems."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from worker.compute.diagnostics.capture import RecurrentCapture, capture
from worker.compute.diagnostics.gradient_flow import GradientFlow
from worker.compute.diagnostics.interpolation import interpolate, largest_bump
from worker.compute.diagnostics.linearization_gap import linearization_gap, unflatten
from worker.compute.diagnostics.local_linearity import linearity_errors
from worker.compute.diagnostics.mean_field import predict
from worker.compute.diagnostics.noise_scale import noise_scale
from worker.compute.diagnostics.recurrent import memory_horizon, through_time
from worker.compute.diagnostics.sharpness import top_hessian_eigenvalue
from worker.compute.diagnostics.trajectory import Projector, alignment, path_efficiency
from worker.compute.evaluation import loss_function
from worker.compute.model import build_model
from worker.compute.pipeline import run_experiment


def test_tanh_mean_field_gain_matches_measurement(spec_factory):
    """Wide tanh MLP: measured per-layer gains within a few percent of sqrt(chi_1(q_l))."""
    torch.manual_seed(0)
    width = 1024
    spec = spec_factory(
        model={"depth": 6, "width": width, "activation": "tanh"},
        init={"scheme": "normal", "gain": 1.5, "bias_std": 0.2},
        data={"kind": "teacher", "input_dim": width, "output_dim": 10},
    )
    model = build_model(spec).double()
    x = torch.randn(512, width, dtype=torch.float64)
    y = torch.randint(0, 10, (512,))
    measured = GradientFlow().compute(capture(model, F.cross_entropy, x, y, 0))["gains"]
    theory = predict(spec, float(x.pow(2).mean()), width)
    assert theory["expected_gains"] == pytest.approx(measured, rel=0.04)


def test_mean_field_fixed_point_for_relu_he():
    """ReLU with sigma_w^2 = 2, no bias: q is preserved and chi_1 = 1 exactly."""
    from worker.core.spec import ExperimentSpec

    spec = ExperimentSpec.model_validate(
        {
            "spec_version": 1,
            "model": {"depth": 5, "width": 64, "activation": "relu"},
            "init": {"scheme": "kaiming_normal"},
            "data": {"kind": "teacher", "input_dim": 64},
            "training": {"steps": 1},
        }
    )
    theory = predict(spec, 1.0, 64)
    assert theory["q"] == pytest.approx([2.0, 2.0, 2.0, 2.0, 2.0], rel=1e-6)
    assert theory["chi1"] == pytest.approx([1.0] * 5, rel=1e-6)


def _linear_rnn_capture(rho: float, steps: int, hidden: int = 16) -> RecurrentCapture:
    """h_t = W h_{t-1} + x_t with W = rho Q (Q orthogonal); loss = u . h_T."""
    torch.manual_seed(0)
    q, _ = torch.linalg.qr(torch.randn(hidden, hidden, dtype=torch.float64))
    w = rho * q
    xs = torch.randn(steps, 4, hidden, dtype=torch.float64, requires_grad=True)
    h = torch.zeros(4, hidden, dtype=torch.float64)
    states = []
    for t in range(steps):
        h = h @ w.T + xs[t]
        states.append(h)
    loss = (states[-1] * torch.randn(hidden, dtype=torch.float64)).sum()
    grads = torch.autograd.grad(loss, states)
    return RecurrentCapture("rnn", "rnn", "tanh", list(grads), [], [])


@pytest.mark.parametrize("rho", [0.5, 0.9, 1.0])
def test_linear_rnn_through_time_gain_is_rho(rho):
    """||dh_T/dh_t v|| = rho^(T-t) ||v|| exactly for W = rho Q: per-step gain rho."""
    record = through_time(_linear_rnn_capture(rho, 30))
    assert record["per_step_gain"] == pytest.approx(rho, rel=1e-9)
    expected = next((k for k in range(30) if rho**k < 0.01), None)
    assert record["memory_horizon"] == expected


def test_memory_horizon_definition():
    assert memory_horizon([0.001, 0.02, 0.5, 1.0]) == 3
    assert memory_horizon([0.5, 1.0]) is None
    assert memory_horizon([1.0]) is None


def test_memory_horizon_reads_a_noisy_plateau_as_reaching_the_start():
    """A trained LSTM's profile: a flat plateau at a few percent of the last step (the head's
    direct path dominates rms[T]) with single steps dipping under 1%. The signal still reaches
    the first step, so the horizon is the whole sequence, not the first dip."""
    plateau = [0.048, 0.008, 0.016, 0.033, 0.004, 0.027, 0.036, 0.009, 0.04, 0.077, 1.0]
    assert memory_horizon(plateau) is None
    assert memory_horizon([0.0001, 0.0005, *plateau[1:]]) == 9  # earliest at 1%: index 3 of 12


def test_tanh_rnn_near_linear_regime_gain_is_rho():
    """Through the real model: tiny inputs keep tanh linear, so the measured gain is ~rho."""
    from worker.core.spec import ExperimentSpec

    spec = ExperimentSpec.model_validate(
        {
            "spec_version": 1,
            "model": {"family": "rnn", "depth": 1, "width": 32},
            "init": {"scheme": "orthogonal", "gain": 0.8},
            "data": {"kind": "adding", "length": 25, "n_train": 64, "n_val": 16},
            "training": {"steps": 1},
        }
    )
    model = build_model(spec).double()
    with torch.no_grad():
        rec = model.layers[0]
        rec.cell.weight_ih_l0.mul_(1e-4)
    x = torch.rand(64, 25, 2, dtype=torch.float64)
    y = torch.rand(64, 1, dtype=torch.float64)
    cap = capture(model, F.mse_loss, x, y, 0)
    record = through_time(cap.recurrent[0])
    assert record["per_step_gain"] == pytest.approx(0.8, rel=0.01)


def _quadratic_problem(hessian_diag):
    """A linear model (head only) with MSE on exact-fit data: the loss is a quadratic in the
    weights with minimum 0 at theta*; the Hessian is diagonal when inputs are scaled axes."""
    from worker.core.spec import ExperimentSpec

    d = len(hessian_diag)
    spec = ExperimentSpec.model_validate(
        {
            "spec_version": 1,
            "model": {"layers": [{"type": "dropout", "p": 0.0}]},
            "data": {"kind": "teacher", "task": "regression", "input_dim": d, "output_dim": 1},
            "training": {"steps": 1, "loss": "mse"},
        }
    )
    model = build_model(spec).double()
    # inputs: sqrt(d * h_i / 2) e_i rows, so mean((x w)^2) has Hessian diag(h_i) (MSE: 1/n sum)
    x = torch.diag(torch.tensor([math.sqrt(d * h / 2) for h in hessian_diag], dtype=torch.float64))
    theta_star = torch.randn(d + 1, dtype=torch.float64)
    with torch.no_grad():
        model.head.weight.copy_(theta_star[:d][None])
        model.head.bias.copy_(theta_star[d:])
        y = model(x)
    return model, x, y


def test_interpolation_on_a_quadratic_is_the_closed_form():
    """L(theta_alpha) = (1 - alpha)^2 (L(theta_0) - L*) + L* when theta_T is the minimizer."""
    torch.manual_seed(0)
    model, x, y = _quadratic_problem([1.0, 3.0, 0.5])
    theta_star = torch.cat([p.detach().flatten() for p in model.parameters()])
    theta0 = theta_star + torch.randn_like(theta_star)
    alphas = [i / 10 for i in range(11)]
    losses = interpolate(model, theta0, theta_star, x, y, F.mse_loss, alphas, x)
    l0 = losses[0]
    assert losses == pytest.approx([(1 - a) ** 2 * l0 for a in alphas], abs=1e-12)
    assert largest_bump(losses) == (0.0, 0)
    # the model is restored to theta_T afterwards
    assert torch.equal(torch.cat([p.detach().flatten() for p in model.parameters()]), theta_star)


def test_largest_bump():
    assert largest_bump([3.0, 2.0, 2.5, 1.0, 1.2]) == (0.5, 2)
    assert largest_bump([3.0, 2.0, 1.0]) == (0.0, 0)


def _gd_on_quadratic(hessian_diag, steps=40, lr=0.1):
    h = torch.tensor(hessian_diag, dtype=torch.float64)
    theta_star = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)[: len(h)]
    theta = torch.zeros_like(theta_star)
    thetas, grads = [], []
    for _ in range(steps):
        g = h * (theta - theta_star)
        thetas.append(theta.clone())
        grads.append(g)
        theta = theta - lr * g
    return thetas, grads, theta


def test_alignment_is_one_for_an_isotropic_quadratic():
    """Gradient descent on (c/2)||theta - theta*||^2 moves on a line toward theta*."""
    thetas, grads, end = _gd_on_quadratic([2.0, 2.0, 2.0])
    cos = alignment(grads[:-1], thetas[:-1], end)
    assert cos == pytest.approx([1.0] * len(cos), abs=1e-9)
    assert path_efficiency([*thetas, end]) == pytest.approx(1.0, abs=1e-12)


def test_alignment_on_an_anisotropic_quadratic_matches_closed_form():
    """cos(-H(theta_0 - theta*), theta_T - theta_0) with theta_T - theta* = (I - eta H)^T (...)."""
    h = [10.0, 1.0, 0.1]
    thetas, grads, end = _gd_on_quadratic(h, steps=40, lr=0.1)
    hh = np.array(h)
    e0 = np.array([-1.0, 2.0, -0.5])  # theta_0 - theta*
    e_end = (1 - 0.1 * hh) ** 40 * e0
    expected = float(
        np.dot(-hh * e0, e_end - e0) / (np.linalg.norm(hh * e0) * np.linalg.norm(e_end - e0))
    )
    assert alignment(grads[:1], thetas[:1], end)[0] == pytest.approx(expected, rel=1e-9)
    assert expected < 0.9  # ill-conditioning: the gradient points off the solution


def test_projection_preserves_inner_products_approximately():
    torch.manual_seed(0)
    a, b = torch.randn(200_000), torch.randn(200_000)
    b = 0.6 * a + 0.8 * b
    proj = Projector(200_000, 8192, threshold=1000, seed=3, device=torch.device("cpu"))
    pa, pb = proj(a), proj(b)
    exact = float(a.double() @ b.double()) / float(a.norm() * b.norm())
    approx = float(pa @ pb) / float(pa.norm() * pb.norm())
    assert approx == pytest.approx(exact, abs=0.03)
    assert Projector(500, 64, threshold=1000, seed=0, device=torch.device("cpu")).active is False


def _tiny_model(spec_factory, **model):
    torch.manual_seed(2)
    spec = spec_factory(
        model={"depth": 2, "width": 5, "activation": "tanh", **model},
        init={"scheme": "normal", "gain": 1.2, "bias_std": 0.1},
        data={"kind": "teacher", "input_dim": 3, "output_dim": 3},
    )
    return build_model(spec).double()


def test_sharpness_matches_explicit_hessian(spec_factory):
    model = _tiny_model(spec_factory)
    x = torch.randn(20, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (20,))
    params = list(model.parameters())
    flat = torch.cat([p.detach().flatten() for p in params])

    def loss_of(vec):
        return F.cross_entropy(torch.func.functional_call(model, unflatten(model, vec), (x,)), y)

    hessian = torch.autograd.functional.hessian(loss_of, flat)
    eig = torch.linalg.eigvalsh(hessian)
    top = float(eig[eig.abs().argmax()])
    estimate = top_hessian_eigenvalue(model, F.cross_entropy, x, y, iterations=200, seed=0)
    assert estimate == pytest.approx(top, rel=1e-4)


def test_noise_scale_matches_per_example_loop(spec_factory):
    model = _tiny_model(spec_factory)
    x = torch.randn(40, 3, dtype=torch.float64)
    y = torch.randint(0, 3, (40,))
    grads = []
    for i in range(40):
        loss = F.cross_entropy(model(x[i : i + 1]), y[i : i + 1])
        g = torch.autograd.grad(loss, list(model.parameters()))
        grads.append(torch.cat([t.flatten() for t in g]))
    stacked = torch.stack(grads)
    mean = stacked.mean(0)
    trace = float(((stacked - mean) ** 2).sum() / 39)
    result = noise_scale(model, F.cross_entropy, x, y)
    assert result["trace_covariance"] == pytest.approx(trace, rel=1e-9)
    assert result["mean_grad_sq_norm"] == pytest.approx(float(mean @ mean), rel=1e-9)
    assert result["b_simple"] == pytest.approx(trace / float(mean @ mean), rel=1e-9)


def test_local_linearity_matches_explicit_formula(spec_factory):
    """One identity linear layer, sin(w z), then the head: f(x) = H sin(w x) + c."""
    torch.manual_seed(0)
    w = 3.0
    spec = spec_factory(
        model={"depth": 1, "width": 4, "activation": "sin", "frequency": w},
        data={"kind": "teacher", "input_dim": 4, "output_dim": 2},
    )
    model = build_model(spec).double()
    with torch.no_grad():
        model.layers[0].weight.copy_(torch.eye(4))
        model.layers[0].bias.zero_()
    x = torch.randn(32, 4, dtype=torch.float64)
    scales = [1e-3, 1e-1, 1.0]
    errors = linearity_errors(model, x, scales, seed=5)
    g = torch.Generator().manual_seed(5)
    u = torch.randn(x.shape, generator=g, dtype=x.dtype)
    u = u / u.norm(dim=1, keepdim=True)
    hw = model.head.weight.detach()
    for eps, err in zip(scales, errors, strict=True):
        delta = eps * x.norm(dim=1, keepdim=True) * u
        change = (torch.sin(w * (x + delta)) - torch.sin(w * x)) @ hw.T
        taylor = (w * torch.cos(w * x) * delta) @ hw.T
        ref = (change - taylor).norm(dim=1) / change.norm(dim=1)
        assert torch.allclose(err, ref, rtol=1e-6, atol=1e-12)
    assert float(errors[0].median()) < 0.05 < float(errors[-1].median())


def test_local_linearity_of_a_linear_net_is_zero(spec_factory):
    torch.manual_seed(0)
    spec = spec_factory(
        model={"depth": 3, "width": 6, "activation": "identity"},
        data={"kind": "teacher", "input_dim": 4, "output_dim": 2},
    )
    model = build_model(spec).double()
    errors = linearity_errors(model, torch.randn(16, 4, dtype=torch.float64), [1e-2, 10.0], 0)
    assert all(float(e.max()) < 1e-9 for e in errors)


def test_linearization_gap_matches_finite_difference_jvp(spec_factory):
    model = _tiny_model(spec_factory)
    x = torch.randn(10, 3, dtype=torch.float64)
    theta0 = torch.cat([p.detach().flatten() for p in model.parameters()])
    theta_end = theta0 + 0.3 * torch.randn_like(theta0)

    def f(vec):
        return torch.func.functional_call(model, unflatten(model, vec), (x,))

    h = 1e-5
    direction = theta_end - theta0
    jd = (f(theta0 + h * direction) - f(theta0 - h * direction)) / (2 * h)
    change = f(theta_end) - f(theta0)
    ref = float((change - jd).norm() / change.norm())
    assert linearization_gap(model, theta0, theta_end, x) == pytest.approx(ref, rel=1e-6)
    # a model linear in its parameters (head only) has no gap
    lin, xq, _ = _quadratic_problem([1.0, 2.0])
    t0 = torch.cat([p.detach().flatten() for p in lin.parameters()])
    assert linearization_gap(lin, t0, t0 + torch.randn_like(t0), xq) < 1e-12


def test_update_to_weight_ratio_matches_a_manual_step(spec_factory):
    """The recorded ratio at step 0 is ||W_1 - W_0|| / ||W_0|| of the first real update."""
    spec = spec_factory(
        training={"steps": 4, "batch_size": 32},
        diagnostics={"preset": "basic", "groups": {"update_ratio": True}},
    )
    result = run_experiment(spec)
    first = result["gradient_flow"]["probes"][0]["update_to_weight"]
    torch.manual_seed(spec.training.seed)
    from worker.compute.data import make_dataset

    data = make_dataset(spec.data, spec.training.seed, torch.device("cpu"))
    model = build_model(spec)
    before = [w.detach().clone() for w in model.weight_tensors()]
    opt = torch.optim.SGD(model.parameters(), lr=spec.optimizer.lr, momentum=0.9)
    g = torch.Generator().manual_seed(spec.training.seed)
    idx = torch.randperm(data.x_train.shape[0], generator=g)[:32]
    loss_fn = loss_function(data.shape)
    loss_fn(model(data.x_train[idx]), data.y_train[idx]).backward()
    opt.step()
    expected = [
        float((w.detach() - b).norm() / b.norm())
        for w, b in zip(model.weight_tensors(), before, strict=True)
    ]
    assert first == pytest.approx(expected, rel=1e-5)
