"""Every component of the spec builds and trains through :func:`run_experiment` (preset
``basic``), with the built model's parameter count and every top-level layer's real output
shape equal to what :func:`analyze` inferred: every layer type, activation, init scheme,
dataset and family.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from tests.worker.compute.conftest import CPU
from tests.worker.conftest import (
    COPY,
    FLATTEN,
    IMG,
    MLP,
    SEQ,
    TEACHER,
    VEC,
    act,
    conv,
    inline,
    layers,
    lin,
    make,
    rec,
    res,
)
from worker.compute.data import make_dataset
from worker.compute.model import build_model
from worker.compute.pipeline import run_experiment
from worker.core.spec import ExperimentSpec, analyze

pytestmark = pytest.mark.usefixtures("one_thread")


def check_trains(spec: ExperimentSpec) -> dict[str, Any]:
    """Train through the runner; check outcome, finiteness, parameters and every shape."""
    analysis = analyze(spec)
    result = run_experiment(spec)
    summary = result["summary"]
    assert summary["outcome"] == "completed", summary
    assert summary["steps"] == spec.training.steps
    assert all(math.isfinite(v) for v in result["curves"]["train_loss"])
    assert summary["final_train_loss"] is not None and math.isfinite(summary["final_train_loss"])

    torch.manual_seed(spec.training.seed)
    model = build_model(spec)
    assert sum(p.numel() for p in model.parameters()) == analysis.parameters
    assert result["model"]["parameters"] == analysis.parameters

    shapes = result["model"]["shapes"]
    assert shapes == analysis.layer_shapes
    assert len(shapes) == len(model.layers) + 1  # top-level layers, then the head
    assert shapes[0]["in"] == list(analysis.data.input_shape)
    assert shapes[-1]["out"] == list(analysis.output_shape)

    # The real modules produce exactly the inferred shape at every top-level layer.
    data = make_dataset(spec.data, spec.training.seed, CPU)
    seen: list[list[int]] = []
    handles = [
        m.register_forward_hook(lambda _m, _i, out: seen.append(list(out.shape[1:])))
        for m in model.layers
    ]
    model.eval()
    with torch.no_grad():
        out = model(data.x_val[:3])
    for h in handles:
        h.remove()
    assert seen == [entry["out"] for entry in shapes[:-1]]
    assert tuple(out.shape[1:]) == analysis.output_shape
    return result


LAYER_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "linear": (layers(lin(8), act("relu")), VEC),
    "linear-no-bias-on-sequence": (layers(lin(6, bias=False), act("tanh"), rec("rnn", 5)), SEQ),
    "conv2d": (layers(conv(4, padding=1), act("relu"), FLATTEN), IMG),
    "conv2d-strided-no-bias": (
        layers(conv(3, kernel_size=3, stride=2, bias=False), act("relu"), FLATTEN),
        IMG,
    ),
    "max_pool": (layers(conv(3), act("relu"), {"type": "max_pool"}, FLATTEN), IMG),
    "avg_pool-stride": (layers({"type": "avg_pool", "kernel_size": 3, "stride": 1}, FLATTEN), IMG),
    "flatten-image": (layers(FLATTEN, lin(8), act("relu")), IMG),
    "flatten-sequence": (layers(FLATTEN, lin(8), act("relu")), SEQ),
    "activation-params": (layers(lin(8), act("leaky_relu", negative_slope=0.2)), VEC),
    "batch_norm-vector": (layers(lin(8), {"type": "batch_norm"}, act("relu")), VEC),
    "batch_norm-image": (layers(conv(4), {"type": "batch_norm"}, act("relu"), FLATTEN), IMG),
    "layer_norm-vector": (layers(lin(8), {"type": "layer_norm"}, act("relu")), VEC),
    "layer_norm-sequence": (layers(lin(4), {"type": "layer_norm"}, rec("gru", 4)), SEQ),
    "layer_norm-image": (layers(conv(2), {"type": "layer_norm"}, act("relu"), FLATTEN), IMG),
    "dropout": (layers(lin(8), act("relu"), {"type": "dropout", "p": 0.5}), VEC),
    "maxout-vector": (layers({"type": "maxout", "out": 6, "pieces": 3}), VEC),
    "maxout-sequence": (layers({"type": "maxout", "out": 4}, rec("lstm", 4)), SEQ),
    "residual-identity": (layers(lin(8), res(lin(8), act("relu"))), VEC),
    "residual-projection-vector": (layers(lin(8), res(lin(12), act("relu"))), VEC),
    "residual-projection-from-input": (layers(res(lin(5), act("tanh"))), VEC),
    "residual-strided-image": (
        layers(conv(4, padding=1), res(conv(8, stride=2, padding=1), act("relu")), FLATTEN),
        IMG,
    ),
    "residual-channels-image": (layers(res(conv(4, padding=1), act("relu")), FLATTEN), IMG),
    "residual-pool-image": (
        layers(conv(2, padding=1), res({"type": "max_pool"}, conv(3, kernel_size=1)), FLATTEN),
        IMG,
    ),
    "residual-projection-sequence": (layers(res(lin(5), act("relu")), rec("rnn", 4)), SEQ),
    "residual-around-recurrent": (
        layers(lin(4), res(rec("lstm", 4, return_sequences=True)), rec("gru", 3)),
        SEQ,
    ),
    "residual-nested": (layers(lin(6), res(res(lin(6), act("relu")), lin(6))), VEC),
    "rnn-tanh": (layers(rec("rnn", 5)), SEQ),
    "rnn-relu": (layers(rec("rnn", 5, nonlinearity="relu")), SEQ),
    "gru": (layers(rec("gru", 5)), SEQ),
    "lstm": (layers(rec("lstm", 5)), SEQ),
    "recurrent-stack": (
        layers(
            rec("rnn", 4, return_sequences=True),
            rec("gru", 4, return_sequences=True),
            rec("lstm", 4),
        ),
        SEQ,
    ),
    "per-step-lstm": (layers(rec("lstm", 6, return_sequences=True)), COPY),
    "per-step-gru-then-linear": (
        layers(rec("gru", 5, return_sequences=True), lin(4), act("relu")),
        COPY,
    ),
}


@pytest.mark.parametrize("case", list(LAYER_CASES))
def test_every_layer_type_trains(case):
    model, data = LAYER_CASES[case]
    check_trains(make(model, data))


def test_layer_cases_cover_every_layer_type():
    covered: set[str] = set()

    def walk(items):
        for item in items:
            covered.add(item["type"])
            walk(item.get("body", []))

    for model, _ in LAYER_CASES.values():
        walk(model["layers"])
    assert covered == {
        "linear",
        "conv2d",
        "max_pool",
        "avg_pool",
        "flatten",
        "activation",
        "batch_norm",
        "layer_norm",
        "dropout",
        "maxout",
        "residual",
        "rnn",
        "gru",
        "lstm",
    }


ACTIVATIONS = [
    "identity",
    "relu",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "silu",
    "softplus",
    "tanh",
    "sigmoid",
    "hard_tanh",
    "sin",
    "triangle",
    "sawtooth",
]


@pytest.mark.parametrize("name", ACTIVATIONS)
def test_every_activation_trains(name):
    model = {"depth": 2, "width": 8, "activation": name, "frequency": 3.0}
    result = check_trains(make(model, TEACHER))
    assert "linearity" in result  # the basic preset's slope probes ran on it


def test_activation_list_is_the_spec_vocabulary():
    from typing import get_args

    from worker.core.spec import ActivationName

    assert sorted(ACTIVATIONS) == sorted(get_args(ActivationName))


SCHEMES = [
    "default",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "normal",
]


ARCHS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "mlp": ({"depth": 2, "width": 8, "activation": "tanh"}, VEC),
    "cnn": ({"family": "cnn", "depth": 2, "width": 3}, IMG),
    "lstm": ({"family": "lstm", "depth": 1, "width": 4}, SEQ),
}


@pytest.mark.parametrize("arch", list(ARCHS))
@pytest.mark.parametrize("scheme", SCHEMES)
def test_every_init_scheme_trains(scheme, arch):
    model, data = ARCHS[arch]
    init: dict[str, Any] = {"scheme": scheme}
    if scheme != "default":
        init["gain"] = 1.2
    check_trains(make(model, data, init=init))


@pytest.mark.parametrize("scheme", ["default", "normal"])
def test_bias_std_and_forget_bias_train(scheme):
    init = {"scheme": scheme, "bias_std": 0.1, "lstm_forget_bias": 1.0}
    spec = make({"family": "lstm", "depth": 2, "width": 4}, SEQ, init=init)
    check_trains(spec)
    torch.manual_seed(0)
    model = build_model(spec)
    assert float(model.head.bias.detach().abs().min()) > 0  # bias_std reaches every bias
    for _, layer in model.recurrent_layers():
        _, _, b_ih, b_hh = layer.parameters_l0()
        assert torch.all(b_ih[4:8] == 1.0) and torch.all(b_hh[4:8] == 0.0)


_RNG = np.random.default_rng(3)


INLINE_VEC = _RNG.standard_normal((20, 3)).round(3).tolist()


INLINE_SEQ = _RNG.standard_normal((20, 4, 2)).round(3).tolist()


INLINE_IMG = _RNG.standard_normal((20, 2, 5, 6)).round(3).tolist()


CLASSES = [i % 3 for i in range(20)]


TARGETS = _RNG.standard_normal(20).round(3).tolist()


TARGETS_2D = _RNG.standard_normal((20, 2)).round(3).tolist()


DATA_CASES: dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, Any]]] = {
    # name: (model, data, training overrides)
    "teacher-classification": (MLP, TEACHER, {}),
    "teacher-regression": (MLP, {**TEACHER, "task": "regression", "noise": 0.1}, {}),
    "teacher-regression-one-output": (MLP, {**TEACHER, "task": "regression", "output_dim": 1}, {}),
    "spirals": (MLP, {**VEC, "arms": 3, "turns": 2.0}, {}),
    "moons": (MLP, {"kind": "moons", "n_train": 48, "n_val": 16}, {}),
    "parity-flat": (MLP, {"kind": "parity", "n_bits": 4, "n_train": 48, "n_val": 16}, {}),
    "parity-sequence": (
        {"family": "gru", "depth": 1, "width": 4},
        {"kind": "parity", "n_bits": 4, "as_sequence": True, "n_train": 48, "n_val": 16},
        {},
    ),
    "digits-flat": (MLP, {"kind": "digits"}, {}),
    "digits-image": ({"family": "cnn", "depth": 2, "width": 3}, IMG, {}),
    "adding": ({"family": "lstm", "depth": 1, "width": 4}, SEQ, {}),
    "copy": ({"family": "lstm", "depth": 2, "width": 4}, COPY, {}),
    "copy-mse": ({"family": "gru", "depth": 1, "width": 4}, COPY, {"loss": "mse"}),
    "inline-vector-classification": (MLP, inline(INLINE_VEC, CLASSES), {}),
    "inline-vector-regression": (MLP, inline(INLINE_VEC, TARGETS), {}),
    "inline-vector-regression-2d": (MLP, inline(INLINE_VEC, TARGETS_2D), {}),
    "inline-int-targets-as-regression": (
        MLP,
        inline(INLINE_VEC, CLASSES, task="regression", val_fraction=0.25),
        {},
    ),
    "inline-sequence": ({"family": "rnn", "depth": 1, "width": 4}, inline(INLINE_SEQ, CLASSES), {}),
    "inline-image": (
        {"family": "cnn", "depth": 2, "width": 2},
        inline(INLINE_IMG, TARGETS, layout="image"),
        {},
    ),
    "inline-classification-mse": (MLP, inline(INLINE_VEC, CLASSES), {"loss": "mse"}),
}


@pytest.mark.parametrize("case", list(DATA_CASES))
def test_every_dataset_trains(case):
    model, data, training = DATA_CASES[case]
    spec = make(model, data, training=training)
    check_trains(spec)
    shape = analyze(spec).data
    ds = make_dataset(spec.data, 0, CPU)
    assert ds.x_train.shape == (shape.n_train, *shape.input_shape)
    assert ds.x_val.shape == (shape.n_val, *shape.input_shape)
    assert ds.x_train.dtype == torch.float32
    if shape.task == "classification":
        assert ds.y_train.dtype == torch.long
        assert int(ds.y_train.max()) < shape.output_dim
        assert ds.y_train.shape == (
            (shape.n_train, shape.sequence_length) if shape.per_step else (shape.n_train,)
        )
    else:
        assert ds.y_train.shape == (shape.n_train, shape.output_dim)


FAMILY_CASES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "mlp": ({"family": "mlp", "depth": 3, "width": 8}, VEC),
    "mlp-batch-norm": ({"depth": 3, "width": 8, "normalization": "batch"}, VEC),
    "mlp-layer-norm-residual": (
        {"depth": 3, "width": 8, "normalization": "layer", "residual": True},
        VEC,
    ),
    "mlp-dropout": ({"depth": 2, "width": 8, "dropout": 0.3}, VEC),
    "resmlp": ({"family": "resmlp", "depth": 3, "width": 8}, VEC),
    "resmlp-batch-norm": (
        {"family": "resmlp", "depth": 2, "width": 8, "normalization": "batch"},
        VEC,
    ),
    "cnn": ({"family": "cnn", "depth": 4, "width": 3}, IMG),
    "cnn-residual-batch-norm-dropout": (
        {
            "family": "cnn",
            "depth": 3,
            "width": 3,
            "residual": True,
            "normalization": "batch",
            "dropout": 0.2,
        },
        IMG,
    ),
    "cnn-layer-norm": ({"family": "cnn", "depth": 2, "width": 2, "normalization": "layer"}, IMG),
    "rnn": ({"family": "rnn", "depth": 2, "width": 4}, SEQ),
    "rnn-relu": ({"family": "rnn", "depth": 1, "width": 4, "rnn_nonlinearity": "relu"}, SEQ),
    "gru": ({"family": "gru", "depth": 2, "width": 4}, SEQ),
    "lstm": ({"family": "lstm", "depth": 2, "width": 4}, SEQ),
}


@pytest.mark.parametrize("case", list(FAMILY_CASES))
def test_every_family_trains(case):
    model, data = FAMILY_CASES[case]
    result = check_trains(make(model, data))
    assert "gradient_flow" in result


def test_hardening_5_a_run_probed_at_every_step_keeps_at_most_the_cap():
    """Hardening item 5: diagnostics.every: 1 runs (and records) at most MAX_PROBES_PER_RUN."""
    from worker.core.probe_schedule import MAX_PROBES_PER_RUN

    spec = ExperimentSpec.model_validate({
        "spec_version": 1, "model": MLP, "data": VEC,
        "training": {"steps": 200, "batch_size": 16, "device": "cpu"},
        "diagnostics": {"preset": "basic", "probe_batch_size": 16, "every": 1},
    })
    flow = run_experiment(spec)["gradient_flow"]
    assert len(flow["probe_steps"]) == len(flow["probes"]) <= MAX_PROBES_PER_RUN
    assert flow["probe_steps"][0] == 0 and flow["probe_steps"][-1] == 200


@pytest.fixture(scope="module")
def warm() -> None:
    """First-use imports (torch's optimizer pulls in its compiler) must not eat a time limit."""
    run_experiment(make(MLP, VEC))


def _limited(data: dict[str, Any], steps: int, limit_s: float) -> ExperimentSpec:
    return ExperimentSpec.model_validate({
        "spec_version": 1, "model": MLP, "data": data,
        "training": {"steps": steps, "batch_size": 8, "device": "cpu", "time_limit_s": limit_s},
        "diagnostics": {"preset": "off", "curve_points": 10},
    })


def test_hardening_11_the_time_limit_holds_inside_a_logging_window(warm):
    """Hardening item 11: one logging window (100,000 steps) far longer than the 0.5 s limit
    still stops at the limit, with a partial result."""
    spec = _limited(VEC, 1_000_000, 0.5)  # curve_points 10: a window every 100,000 steps
    summary = run_experiment(spec)["summary"]
    assert summary["outcome"] == "timed_out"
    assert 0 < summary["steps"] < 100_000  # stopped inside the first window
    assert summary["train_time_s"] <= 0.5 + 0.3, summary["train_time_s"]
    assert summary["final_val_loss"] is not None  # the partial result is evaluated


def test_hardening_11_the_time_limit_counts_data_generation(warm):
    """Hardening item 11: a job whose data take longer than its limit trains no step and
    still ends with a (partial) result."""
    # a deep, wide teacher: slow to generate (well over 0.15 s), small in memory
    data = {"kind": "teacher", "input_dim": 32, "teacher_width": 1024, "teacher_depth": 10,
            "n_train": 1000, "n_val": 100}
    summary = run_experiment(_limited(data, 1_000_000, 0.15))["summary"]
    assert summary["outcome"] == "timed_out"
    assert summary["steps"] == 0  # on main: the limit started after the data, then trained
    assert summary["final_val_loss"] is not None
