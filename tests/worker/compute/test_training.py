"""The training loop against a plain PyTorch loop, divergence detection, determinism; gradient
clipping and lr schedules against a hand-written loop."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from tests.worker.compute.conftest import CPU
from tests.worker.conftest import MLP, VEC, make
from worker.compute.data import make_dataset
from worker.compute.model import build_model
from worker.compute.pipeline import run_experiment
from worker.compute.training import train
from worker.core.spec import ExperimentSpec


def plain_loop_losses(spec, steps):
    """A hand-written SGD+momentum loop over the same data, model and batch order."""
    cpu = torch.device("cpu")
    torch.manual_seed(spec.training.seed)
    data = make_dataset(spec.data, spec.training.seed, cpu)
    model = build_model(spec)
    o = spec.optimizer
    opt = torch.optim.SGD(
        model.parameters(),
        lr=o.lr,
        momentum=o.momentum,
        nesterov=o.nesterov,
        weight_decay=o.weight_decay,
    )
    n, b = data.x_train.shape[0], spec.training.batch_size
    g = torch.Generator().manual_seed(spec.training.seed)
    perm, pos, losses = torch.randperm(n, generator=g), 0, []
    for _ in range(steps):
        if pos + b > n:
            perm, pos = torch.randperm(n, generator=g), 0
        idx = perm[pos : pos + b]
        pos += b
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if not math.isfinite(losses[-1]):
            break
    return losses, model


def test_loop_matches_plain_pytorch_loop(spec_factory):
    spec = spec_factory(
        training={"steps": 23, "batch_size": 50, "seed": 4}, diagnostics={"curve_points": 1000}
    )
    torch.manual_seed(4)
    data = make_dataset(spec.data, 4, torch.device("cpu"))
    model = build_model(spec)
    run = train(spec, model, data)
    reference, ref_model = plain_loop_losses(spec, 23)
    # one curve point per step (curve_points > steps), crossing an epoch boundary at step 5
    assert run.curves.step == list(range(1, 24))
    assert run.curves.train_loss == pytest.approx(reference, rel=1e-6)
    for p, q in zip(model.parameters(), ref_model.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-6)


@pytest.mark.parametrize("normalization", ["none", "batch", "layer"])
def test_probes_do_not_change_training(spec_factory, normalization):
    """Diagnostics on or off: the same train and validation losses (batch-norm stats too)."""
    kw = {
        "model": {"normalization": normalization},
        "training": {"steps": 30},
        "diagnostics": {"every": 3},
    }
    on = run_experiment(spec_factory(**kw))
    off = run_experiment(spec_factory(**{**kw, "diagnostics": {"preset": "off"}}))
    assert on["curves"]["train_loss"] == off["curves"]["train_loss"]
    assert on["curves"]["val_loss"] == off["curves"]["val_loss"]
    assert len(on["gradient_flow"]["probes"]) == 11  # steps 0, 3, ..., 30
    assert "gradient_flow" not in off


def test_divergence_is_an_outcome_with_the_first_bad_step(spec_factory):
    spec = spec_factory(
        model={"depth": 6, "width": 32, "activation": "identity"},
        init={"scheme": "normal", "gain": 3.0},
        optimizer={"lr": 5.0, "momentum": 0.9},
        training={"steps": 200},
    )
    result = run_experiment(spec)
    reference, _ = plain_loop_losses(spec, 200)
    assert not math.isfinite(reference[-1])
    assert result["summary"]["outcome"] == "diverged"
    assert result["summary"]["diverged_at_step"] == len(reference)
    assert result["summary"]["steps"] == len(reference)
    assert result["findings"][0]["code"] == "diverged"
    assert result["findings"][0]["evidence"]["diverged_at_step"] == len(reference)
    # diagnostics gathered up to divergence are kept; no probe ran on non-finite weights
    probes = result["gradient_flow"]["probes"]
    assert probes and all(p["step"] < len(reference) for p in probes)


def test_same_spec_and_seed_give_the_same_numbers(spec_factory):
    spec = spec_factory(model={"normalization": "batch"}, training={"steps": 15})
    a, b = run_experiment(spec), run_experiment(spec)
    for key in ("curves", "gradient_flow", "linearity", "findings"):
        assert a[key] == b[key]
    other = run_experiment(
        spec_factory(model={"normalization": "batch"}, training={"steps": 15, "seed": 1})
    )
    assert other["curves"]["train_loss"] != a["curves"]["train_loss"]


def test_training_learns_spirals(spec_factory):
    spec = spec_factory(
        model={"depth": 3, "width": 64},
        init={"scheme": "kaiming_normal"},
        data={"kind": "spirals", "n_train": 1024, "n_val": 256},
        training={"steps": 600},
    )
    summary = run_experiment(spec)["summary"]
    assert summary["outcome"] == "completed"
    assert summary["final_val_accuracy"] > 0.9


def test_epochs_convert_to_full_batches(spec_factory):
    spec = spec_factory(training={"steps": None, "epochs": 3, "batch_size": 100})
    result = run_experiment(spec)
    assert result["summary"]["steps"] == 3 * (256 // 100)
    assert result["gradient_flow"]["probe_steps"][-1] == 6


def test_cuda_request_without_gpu_is_a_clear_error(spec_factory):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    from worker.compute.pipeline import DeviceUnavailable

    with pytest.raises(DeviceUnavailable, match="no GPU"):
        run_experiment(spec_factory(training={"device": "cuda"}))


@pytest.mark.parametrize(
    ("model", "data"),
    [
        ({"depth": 2, "width": 8, "normalization": "batch"}, None),
        (
            {"family": "lstm", "depth": 1, "width": 8},
            {"kind": "adding", "length": 6, "n_train": 64, "n_val": 16},
        ),
    ],
)
def test_result_matches_its_documented_schema(spec_factory, model, data):
    """Every field the runner writes is documented in worker.core.result (extra fields fail)."""
    from worker.core.result import ExperimentResult

    spec = spec_factory(
        model=model,
        data=data,
        training={"steps": 4},
        diagnostics={"preset": "full", "every": 2, "interpolation_points": 3},
    )
    result = run_experiment(spec)
    parsed = ExperimentResult.model_validate(result)
    assert parsed.gradient_flow is not None and parsed.linearity is not None
    assert parsed.trajectory is not None and parsed.curvature is not None


def plain_loop(spec: ExperimentSpec, lrs: list[float], clip: float | None) -> nn.Module:
    """SGD+momentum by hand, same batches, explicit per-step lr, clip_grad_norm_ when asked."""
    torch.manual_seed(spec.training.seed)
    data = make_dataset(spec.data, spec.training.seed, CPU)
    model = build_model(spec)
    opt = torch.optim.SGD(model.parameters(), lr=lrs[0], momentum=spec.optimizer.momentum)
    n, b = data.x_train.shape[0], spec.training.batch_size
    g = torch.Generator().manual_seed(spec.training.seed)
    perm, pos = torch.randperm(n, generator=g), 0
    for lr in lrs:
        if pos + b > n:
            perm, pos = torch.randperm(n, generator=g), 0
        idx = perm[pos : pos + b]
        pos += b
        for group in opt.param_groups:
            group["lr"] = lr
        loss = F.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
        opt.zero_grad()
        loss.backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
    return model



def params(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


@pytest.mark.usefixtures("one_thread")

def test_clipping_and_schedule_match_a_plain_loop():
    steps, lr = 12, 0.5
    spec = make(
        MLP,
        VEC,
        optimizer={
            "lr": lr,
            "momentum": 0.9,
            "clip_grad_norm": 0.05,
            "schedule": {"kind": "cosine", "warmup_steps": 3, "min_factor": 0.1},
        },
        training={"steps": steps},
        preset="off",
    )
    warm = 3
    lrs = [
        lr
        * (
            (s + 1) / warm
            if s < warm
            else 0.1 + 0.9 * (1 + math.cos(math.pi * (s - warm) / (steps - warm))) / 2
        )
        for s in range(steps)
    ]
    torch.manual_seed(0)
    model = build_model(spec)
    train(spec, model, make_dataset(spec.data, 0, CPU))
    reference = plain_loop(spec, lrs, clip=0.05)
    torch.testing.assert_close(params(model), params(reference), rtol=1e-5, atol=1e-6)
    unclipped = plain_loop(spec, lrs, clip=None)
    assert not torch.allclose(params(unclipped), params(reference), atol=1e-3)


@pytest.mark.usefixtures("one_thread")

def test_clipping_bounds_each_update():
    clip, lr = 1e-3, 2.0
    for steps in (1, 2, 3):
        spec = make(
            MLP,
            VEC,
            optimizer={"lr": lr, "momentum": 0.0, "clip_grad_norm": clip},
            training={"steps": steps},
            preset="off",
        )
        torch.manual_seed(0)
        model = build_model(spec)
        before = params(model)
        train(spec, model, make_dataset(spec.data, 0, CPU))
        # plain SGD: each update is lr * clipped gradient, so the path is at most steps*lr*clip
        assert float((params(model) - before).norm()) <= steps * lr * clip * (1 + 1e-5)
    # and a single step is exactly lr*clip long (the gradient is far above the clip)
    spec = make(
        MLP,
        VEC,
        optimizer={"lr": lr, "momentum": 0.0, "clip_grad_norm": clip},
        training={"steps": 1},
        preset="off",
    )
    torch.manual_seed(0)
    model = build_model(spec)
    before = params(model)
    train(spec, model, make_dataset(spec.data, 0, CPU))
    assert float((params(model) - before).norm()) == pytest.approx(lr * clip, rel=1e-4)
