"""Every component of the spec builds, trains and agrees with its torch-free shape inference.

Three groups:

- every layer type, activation, init scheme, dataset and family builds and trains a few steps
  through :func:`run_experiment` (preset ``basic``), with the built model's parameter count and
  every top-level layer's real output shape equal to what :func:`analyze` inferred;
- invalid forms are refused before any torch code runs, by pydantic (naming the field) or by
  :func:`analyze` (a :class:`ShapeError` whose ``loc`` names the layer);
- independent references where they are cheap: fused vs unrolled recurrence, maxout as an
  explicit max, residual projections, LSTM forget bias, orthogonal init, lr schedules in closed
  form, gradient clipping against a plain loop, FLOPs against torch's flop counter, and the
  synthetic datasets against their definitions.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pydantic import ValidationError
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from worker.compute.data import make_dataset
from worker.compute.layers import Maxout, Recurrent, Residual
from worker.compute.model import build_model
from worker.compute.pipeline import run_experiment
from worker.compute.training import train
from worker.core.spec import (
    ExperimentSpec,
    InlineData,
    ScheduleSpec,
    ShapeError,
    analyze,
    lr_factor,
)

CPU = torch.device("cpu")

# Tiny data of each input rank (digits is fixed-size, but small).
VEC: dict[str, Any] = {"kind": "spirals", "n_train": 48, "n_val": 16}
IMG: dict[str, Any] = {"kind": "digits", "layout": "image"}
SEQ: dict[str, Any] = {"kind": "adding", "length": 6, "n_train": 48, "n_val": 16}
COPY: dict[str, Any] = {
    "kind": "copy",
    "length": 3,
    "symbols": 2,
    "alphabet": 3,
    "n_train": 48,
    "n_val": 16,
}
TEACHER: dict[str, Any] = {
    "kind": "teacher",
    "input_dim": 5,
    "output_dim": 3,
    "teacher_width": 8,
    "n_train": 48,
    "n_val": 16,
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and far faster than two on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def make(
    model: dict[str, Any],
    data: dict[str, Any],
    *,
    init: dict[str, Any] | None = None,
    optimizer: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    preset: str = "basic",
) -> ExperimentSpec:
    """A small spec; validated like a request body."""
    return ExperimentSpec.model_validate(
        {
            "spec_version": 1,
            "model": model,
            "init": init or {},
            "data": data,
            "optimizer": optimizer or {"lr": 0.01},
            "training": {"steps": 4, "batch_size": 16, "device": "cpu", **(training or {})},
            "diagnostics": {"preset": preset, "probe_batch_size": 16},
        }
    )


def layers(*items: dict[str, Any]) -> dict[str, Any]:
    return {"layers": list(items)}


def lin(out: int, **kw: Any) -> dict[str, Any]:
    return {"type": "linear", "out": out, **kw}


def act(name: str, **kw: Any) -> dict[str, Any]:
    return {"type": "activation", "name": name, **kw}


def conv(out: int, **kw: Any) -> dict[str, Any]:
    return {"type": "conv2d", "out_channels": out, **kw}


def rec(kind: str, hidden: int, **kw: Any) -> dict[str, Any]:
    return {"type": kind, "hidden": hidden, **kw}


def res(*body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "residual", "body": list(body)}


FLATTEN = {"type": "flatten"}


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


# --------------------------------------------------------------------------------------------
# Every layer type


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


# --------------------------------------------------------------------------------------------
# Every activation, init scheme, dataset and family

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


def inline(x: Any, y: Any, **kw: Any) -> dict[str, Any]:
    return {"kind": "inline", "x": x, "y": y, **kw}


_RNG = np.random.default_rng(3)
INLINE_VEC = _RNG.standard_normal((20, 3)).round(3).tolist()
INLINE_SEQ = _RNG.standard_normal((20, 4, 2)).round(3).tolist()
INLINE_IMG = _RNG.standard_normal((20, 2, 5, 6)).round(3).tolist()
CLASSES = [i % 3 for i in range(20)]
TARGETS = _RNG.standard_normal(20).round(3).tolist()
TARGETS_2D = _RNG.standard_normal((20, 2)).round(3).tolist()
MLP = {"depth": 2, "width": 8}

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


def test_cnn_family_pools_until_two_by_two():
    spec = make({"family": "cnn", "depth": 8, "width": 2}, IMG)
    a = analyze(spec)
    pools = [s for s in a.layer_shapes if s["type"] == "max_pool"]
    assert [p["out"][1:] for p in pools] == [[4, 4], [2, 2]]


# --------------------------------------------------------------------------------------------
# Invalid forms: refused by validation (naming the field) or by analyze (naming the layer)


def doc(model: dict[str, Any], data: dict[str, Any] | None = None, **parts: Any) -> dict[str, Any]:
    return {
        "spec_version": 1,
        "model": model,
        "data": data or VEC,
        "training": {"steps": 2},
        **parts,
    }


def is_subsequence(expected: tuple[Any, ...], loc: tuple[Any, ...]) -> bool:
    it = iter(loc)
    return all(any(part == x for x in it) for part in expected)


RAGGED = [[1.0, 2.0], [3.0], [1.0, 2.0], [1.0, 2.0]]
RAGGED_INNER = [[[1.0, 2.0], [3.0]], [[1.0, 2.0], [3.0, 4.0]]] * 2
INVALID_AT_VALIDATION: dict[str, tuple[dict[str, Any], tuple[Any, ...]]] = {
    # name: (request body, the field path its error names)
    "unknown activation (family)": (
        doc({"depth": 2, "width": 4, "activation": "swish"}),
        ("model", "activation"),
    ),
    "unknown activation (layer)": (doc(layers(act("swish"))), ("model", "layers", 0, "name")),
    "unknown layer type": (doc(layers({"type": "attention"})), ("model", "layers", 0)),
    "typo in a field": (doc({"depth": 2, "widht": 4}), ("model", "widht")),
    "string for an int (strict)": (doc({"depth": "2", "width": 4}), ("model", "depth")),
    "zero width linear": (doc(layers(lin(0))), ("model", "layers", 0, "out")),
    "dropout p = 1": (doc(layers({"type": "dropout", "p": 1.0})), ("model", "layers", 0, "p")),
    "maxout with one piece": (
        doc(layers({"type": "maxout", "out": 4, "pieces": 1})),
        ("model", "layers", 0, "pieces"),
    ),
    "kernel above the limit": (
        doc(layers(conv(2, kernel_size=16))),
        ("model", "layers", 0, "kernel_size"),
    ),
    "empty residual body": (doc(layers(res())), ("model", "layers", 0, "body")),
    "bad layer inside a residual": (
        doc(layers(res(lin(0)))),
        ("model", "layers", 0, "body", 0, "out"),
    ),
    "recurrent family with residual": (
        doc({"family": "lstm", "depth": 1, "width": 4, "residual": True}, SEQ),
        ("model",),
    ),
    "recurrent family with dropout": (
        doc({"family": "rnn", "depth": 1, "width": 4, "dropout": 0.2}, SEQ),
        ("model", "family"),
    ),
    "recurrent family with an activation": (
        doc({"family": "gru", "depth": 1, "width": 4, "activation": "tanh"}, SEQ),
        ("model",),
    ),
    "nesterov with momentum 0": (
        doc(MLP, optimizer={"momentum": 0.0, "nesterov": True}),
        ("optimizer",),
    ),
    "momentum 1": (doc(MLP, optimizer={"momentum": 1.0}), ("optimizer", "momentum")),
    "both steps and epochs": (doc(MLP, training={"steps": 2, "epochs": 1}), ("training",)),
    "neither steps nor epochs": (doc(MLP, training={}), ("training",)),
    "gain with the default scheme": (doc(MLP, init={"gain": 2.0}), ("init",)),
    "unknown init scheme": (doc(MLP, init={"scheme": "lecun"}), ("init", "scheme")),
    "teacher classification with one class": (
        doc(MLP, {**TEACHER, "output_dim": 1}),
        ("data", "teacher"),
    ),
    "unknown data kind": (doc(MLP, {"kind": "mnist"}), ("data",)),
    "inline ragged x": (doc(MLP, inline(RAGGED, [0, 1, 0, 1])), ("data", "inline")),
    "inline ragged inside an example": (
        doc(MLP, inline(RAGGED_INNER, [0, 1, 0, 1])),
        ("data", "inline"),
    ),
    "inline mixed ranks": (
        doc(MLP, inline([[1.0], [[1.0]], [1.0], [1.0]], [0, 1, 0, 1])),
        ("data", "inline"),
    ),
    "inline len(x) != len(y)": (doc(MLP, inline([[1.0]] * 5, [0, 1, 0, 1])), ("data", "inline")),
    "inline empty examples": (doc(MLP, inline([[]] * 6, [0, 1] * 3)), ("data", "inline")),
    "inline empty regression targets": (
        doc(MLP, inline([[1.0]] * 6, [[]] * 6)),
        ("data", "inline"),
    ),
    "inline one class": (doc(MLP, inline([[1.0]] * 6, [1] * 6)), ("data", "inline")),
    "inline negative class": (doc(MLP, inline([[1.0]] * 6, [0, -1] * 3)), ("data", "inline")),
    "inline float targets for classification": (
        doc(MLP, inline([[1.0]] * 6, [0.0, 1.5] * 3, task="classification")),
        ("data", "inline"),
    ),
    "inline uneven regression targets": (
        doc(MLP, inline([[1.0]] * 6, [[1.0], [1.0, 2.0]] * 3)),
        ("data", "inline"),
    ),
    "inline layout disagrees": (
        doc(MLP, inline([[1.0]] * 6, [0, 1] * 3, layout="image")),
        ("data", "inline"),
    ),
    "inline too few for a split": (
        doc(MLP, inline([[1.0]] * 4, [0, 1] * 2, val_fraction=0.9)),
        ("data", "inline"),
    ),
    "inline too few examples": (doc(MLP, inline([[1.0]] * 3, [0, 1, 0])), ("data", "inline", "x")),
    "spec_version 2": ({**doc(MLP), "spec_version": 2}, ("spec_version",)),
}


@pytest.mark.parametrize("case", list(INVALID_AT_VALIDATION))
def test_invalid_forms_fail_validation_naming_the_field(case):
    body, field = INVALID_AT_VALIDATION[case]
    with pytest.raises(ValidationError) as info:
        ExperimentSpec.model_validate(body)
    locs = [tuple(err["loc"]) for err in info.value.errors()]
    assert any(is_subsequence(field, loc) for loc in locs), locs


@pytest.mark.parametrize(
    "x",
    [
        [[float("nan")], [1.0], [2.0], [3.0], [4.0]],
        [[float("inf")], [1.0], [2.0], [3.0], [4.0]],
        [[1.0], [1e39], [2.0], [3.0], [4.0]],  # finite in Python, inf as float32
    ],
)
def test_inline_non_finite_inputs_are_refused(x):
    with pytest.raises(ValidationError, match="non-finite"):
        InlineData.model_validate({"kind": "inline", "x": x, "y": [0, 1, 0, 1, 0]})


def test_inline_non_finite_targets_and_json_overflow_are_refused():
    with pytest.raises(ValidationError, match="non-finite"):
        InlineData.model_validate(
            {"kind": "inline", "x": [[1.0]] * 5, "y": [0.5, 1, 2, float("inf"), 3]}
        )
    # NaN has no JSON spelling, but an overflowing literal parses to inf.
    body = '{"kind": "inline", "x": [[1e999], [1], [2], [3], [4]], "y": [0, 1, 0, 1, 0]}'
    with pytest.raises(ValidationError, match="non-finite"):
        InlineData.model_validate_json(body)


L = ("model", "layers")
INVALID_AT_ANALYSIS: dict[str, tuple[dict[str, Any], tuple[Any, ...]]] = {
    "conv2d on vector data": (doc(layers(lin(4), conv(2)), VEC), (*L, 1)),
    "max_pool on vector data": (doc(layers({"type": "max_pool"}), VEC), (*L, 0)),
    "linear on an image without flatten": (
        doc(layers(conv(2), act("relu"), lin(4)), IMG),
        (*L, 2),
    ),
    "maxout on an image": (doc(layers({"type": "maxout", "out": 3}), IMG), (*L, 0)),
    "rnn on vector data": (doc(layers(lin(4), rec("rnn", 4)), VEC), (*L, 1)),
    "lstm on an image": (doc(layers(rec("lstm", 4)), IMG), (*L, 0)),
    "batch_norm on a sequence": (
        doc(layers(lin(4), {"type": "batch_norm"}, rec("gru", 3)), SEQ),
        (*L, 1),
    ),
    "kernel larger than the image": (
        doc(layers(conv(2, kernel_size=9), FLATTEN), IMG),
        (*L, 0),
    ),
    "pool larger than the feature map": (
        doc(layers(conv(2, kernel_size=5), {"type": "max_pool", "kernel_size": 5}, FLATTEN), IMG),
        (*L, 1),
    ),
    "residual body shrinks the image by a kernel": (
        doc(layers(res(conv(2, kernel_size=3)), FLATTEN), IMG),
        (*L, 0),
    ),
    "residual body turns a sequence into a vector": (
        doc(layers(res(rec("rnn", 3))), SEQ),
        (*L, 0),
    ),
    "residual body flattens an image": (
        doc(layers(res(FLATTEN, lin(4)), FLATTEN), IMG),
        (*L, 0),
    ),
    "residual body with a misplaced layer": (
        doc(layers(lin(4), res(conv(2))), VEC),
        (*L, 1, "body", 0),
    ),
    "image body without flatten": (doc(layers(conv(2), act("relu")), IMG), (*L, 1)),
    "sequence body without return_sequences=false": (
        doc(layers(rec("gru", 3, return_sequences=True)), SEQ),
        (*L, 0),
    ),
    "per-step task (copy) with a model ending in a vector": (
        doc(layers(rec("lstm", 4)), COPY),
        (*L, 0),
    ),
    "per-step task (copy) with the vector family": (doc(MLP, COPY), ("model", "family")),
    "family cnn on flat data": (
        doc({"family": "cnn", "depth": 2, "width": 4}, VEC),
        ("model", "family"),
    ),
    "family mlp on images": (doc(MLP, IMG), ("model", "family")),
    "family lstm on vectors": (
        doc({"family": "lstm", "depth": 1, "width": 4}, VEC),
        ("model", "family"),
    ),
    "family cnn on an image too small to pool": (
        doc({"family": "cnn", "depth": 4, "width": 2}, inline([[[[1.0]] * 5]] * 6, [0, 1] * 3)),
        ("model",),
    ),
    "cross_entropy on a regression task": (
        doc(
            MLP,
            {**TEACHER, "task": "regression"},
            training={"steps": 2, "loss": "cross_entropy"},
        ),
        ("training", "loss"),
    ),
    "batch norm with batches of one": (
        doc({**MLP, "normalization": "batch"}, training={"steps": 2, "batch_size": 1}),
        ("training", "batch_size"),
    ),
}


@pytest.mark.parametrize("case", list(INVALID_AT_ANALYSIS))
def test_invalid_forms_fail_analysis_naming_the_layer(case):
    body, loc = INVALID_AT_ANALYSIS[case]
    spec = ExperimentSpec.model_validate(body)  # valid field by field ...
    with pytest.raises(ShapeError) as info:
        analyze(spec)  # ... but the layers do not fit the data
    assert info.value.loc == loc, info.value.message
    assert info.value.message


# --------------------------------------------------------------------------------------------
# Independent references


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


def test_orthogonal_init_of_square_linear_layers():
    spec = make({"depth": 3, "width": 8}, VEC, init={"scheme": "orthogonal", "gain": 0.5})
    torch.manual_seed(0)
    w = build_model(spec).layers[2].weight.detach().double()  # the second 8x8 linear
    torch.testing.assert_close(w.T @ w, 0.25 * torch.eye(8, dtype=torch.float64), atol=1e-6, rtol=0)


def test_lr_schedules_match_closed_forms():
    total = 100
    step = ScheduleSpec(kind="step", step_size=30, gamma=0.5)
    assert [lr_factor(step, s, total) for s in (0, 29, 30, 59, 60, 99)] == [
        1,
        1,
        0.5,
        0.5,
        0.25,
        0.125,
    ]

    warm, floor = 10, 0.1
    cosine = ScheduleSpec(kind="cosine", warmup_steps=warm, min_factor=floor)
    for s in range(total):
        if s < warm:
            expected = (s + 1) / warm
        else:
            expected = (
                floor + (1 - floor) * (1 + math.cos(math.pi * (s - warm) / (total - warm))) / 2
            )
        assert lr_factor(cosine, s, total) == pytest.approx(expected, abs=1e-12)
    assert lr_factor(cosine, warm, total) == 1.0
    assert lr_factor(cosine, total, total) == pytest.approx(floor)

    constant = ScheduleSpec(warmup_steps=4)
    assert [lr_factor(constant, s, total) for s in range(6)] == [0.25, 0.5, 0.75, 1, 1, 1]
    warm_step = ScheduleSpec(kind="step", warmup_steps=5, step_size=10, gamma=0.1)
    assert lr_factor(warm_step, 4, total) == 1.0
    assert lr_factor(warm_step, 10, total) == pytest.approx(0.1)  # steps count from 0, not warmup


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


def torch_flops(spec: ExperimentSpec) -> int:
    """Forward FLOPs of one example, counted by torch's own flop counter (matmuls/convs)."""
    torch.manual_seed(0)
    model = build_model(spec).eval()
    x = torch.zeros(1, *analyze(spec).data.input_shape)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


def test_flops_of_linear_layers():
    spec = make(layers(lin(8), lin(5)), VEC)
    by_hand = 2 * 2 * 8 + 2 * 8 * 5 + 2 * 5 * 2  # 2 * n_in * n_out per linear (and the head)
    assert analyze(spec).flops_per_example == by_hand == torch_flops(spec)


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


def test_adding_problem_targets_and_markers():
    spec = make(
        {"family": "lstm", "depth": 1, "width": 4},
        {"kind": "adding", "length": 11, "n_train": 64, "n_val": 16},
    )
    ds = make_dataset(spec.data, 5, CPU)
    x, y = torch.cat([ds.x_train, ds.x_val]), torch.cat([ds.y_train, ds.y_val])
    values, markers = x[..., 0], x[..., 1]
    assert x.shape == (80, 11, 2) and y.shape == (80, 1)
    assert torch.all((values >= 0) & (values < 1))
    assert torch.all(markers.sum(dim=1) == 2)
    assert torch.all(markers[:, :5].sum(dim=1) == 1) and torch.all(markers[:, 5:].sum(dim=1) == 1)
    torch.testing.assert_close((values * markers).sum(dim=1, keepdim=True), y)


def test_copy_task_targets_are_the_symbols_at_the_end():
    s, length, k = 3, 4, 5
    data = {
        "kind": "copy",
        "length": length,
        "symbols": s,
        "alphabet": k,
        "n_train": 32,
        "n_val": 8,
    }
    ds = make_dataset(make({"family": "lstm", "depth": 1, "width": 4}, data).data, 1, CPU)
    tokens, y = ds.x_train.argmax(dim=-1), ds.y_train
    steps = 2 * s + length + 1
    assert ds.x_train.shape == (32, steps, k + 2) and y.shape == (32, steps)
    assert torch.all(ds.x_train.sum(dim=-1) == 1)  # one-hot
    symbols = tokens[:, :s]
    assert torch.all((symbols >= 1) & (symbols <= k))
    assert torch.all(tokens[:, s + length] == k + 1)  # the delimiter
    assert torch.all(tokens[:, s : s + length] == 0) and torch.all(tokens[:, s + length + 1 :] == 0)
    assert torch.equal(y[:, -s:], symbols)
    assert torch.all(y[:, :-s] == 0)


@pytest.mark.parametrize("as_sequence", [False, True])
def test_parity_labels(as_sequence):
    data = {"kind": "parity", "n_bits": 5, "as_sequence": as_sequence, "n_train": 64, "n_val": 16}
    model = {"family": "rnn", "depth": 1, "width": 3} if as_sequence else MLP
    ds = make_dataset(make(model, data).data, 2, CPU)
    x = ds.x_train.reshape(64, 5)
    assert ds.x_train.shape == ((64, 5, 1) if as_sequence else (64, 5))
    assert torch.all(x.abs() == 1)  # +-1 bits, not standardized
    assert torch.equal(ds.y_train, ((x < 0).sum(dim=1) % 2).long())


def test_digits_image_layout():
    from sklearn.datasets import load_digits

    ds = make_dataset(make({"family": "cnn", "depth": 1, "width": 2}, IMG).data, 0, CPU)
    flat = make_dataset(make(MLP, {"kind": "digits"}).data, 0, CPU)
    assert ds.x_train.shape[1:] == (1, 8, 8) and ds.x_train.shape[0] + ds.x_val.shape[0] == 1797
    assert float(ds.x_train.min()) >= 0 and float(ds.x_train.max()) <= 1
    assert torch.equal(ds.y_train, flat.y_train)  # the same seeded order in both layouts
    bunch = load_digits()
    by_pixels = {
        row.astype(np.float32).tobytes(): int(t)
        for row, t in zip(bunch.data, bunch.target, strict=True)
    }
    for image, label in zip(ds.x_train[:20], ds.y_train[:20], strict=True):
        raw = (image.reshape(64) * 16).numpy().astype(np.float32)
        assert by_pixels[raw.tobytes()] == int(label)  # row-major 8x8 of the original pixels
