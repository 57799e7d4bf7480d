"""Property: a spec that validates and analyzes builds, trains a step and has the inferred shape.

Hypothesis draws request bodies over every family, layer type, data kind, init scheme and
optimizer option, with small sizes. Layer lists are drawn mostly shape-aware (each layer fits
the rank its input has), with some layers drawn blind, so both fitting and misfitting designs
come up. The contract under test is the one the service relies on:

- a body that fails is refused by pydantic (:class:`ValidationError`) or by :func:`analyze`
  (:class:`ShapeError` with a location), never by another exception;
- a body that passes both builds, trains one step through :func:`run_experiment`, produces a
  JSON-safe result, and the model's output has the shape :func:`analyze` inferred.
"""

from __future__ import annotations

import json
from typing import Any, get_args

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from worker.compute.data import make_dataset
from worker.compute.model import build_model
from worker.compute.pipeline import run_experiment
from worker.core.spec import (
    ActivationName,
    DataSpec,
    ExperimentSpec,
    ShapeError,
    analyze,
    data_shape,
)

CPU = torch.device("cpu")
ACTIVATIONS = list(get_args(ActivationName))
SCHEMES = [
    "default",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "normal",
]
VECTOR, SEQUENCE, IMAGE = 1, 2, 3

small = st.integers(1, 5)


def weighted(yes: int, no: int) -> st.SearchStrategy[bool]:
    """True with odds yes:no (plain integers would favour their bounds)."""
    return st.sampled_from([True] * yes + [False] * no)


splits = {"n_train": st.integers(8, 24), "n_val": st.just(8)}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and far faster than two on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# --------------------------------------------------------------------------------------------
# Data


@st.composite
def inline_data(draw: st.DrawFn) -> dict[str, Any]:
    rank = draw(st.sampled_from([VECTOR, SEQUENCE, IMAGE]))
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    n = draw(st.integers(5, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    x = rng.standard_normal((n, *shape)).round(3).tolist()
    target = draw(st.sampled_from(["classes", "scalar", "vector"]))
    y: list[Any]
    if target == "classes":
        y = [int(v) for v in rng.integers(0, draw(st.integers(1, 4)), size=n)]
    elif target == "scalar":
        y = rng.standard_normal(n).round(3).tolist()
    else:
        y = rng.standard_normal((n, draw(st.integers(1, 3)))).round(3).tolist()
    body: dict[str, Any] = {"kind": "inline", "x": x, "y": y}
    if draw(st.booleans()):
        body["layout"] = draw(st.sampled_from(["auto", "vector", "sequence", "image"]))
    if draw(st.booleans()):
        body["task"] = draw(st.sampled_from(["classification", "regression"]))
    return body


DATA_KINDS: list[st.SearchStrategy[dict[str, Any]]] = [
    st.fixed_dictionaries(
        {
            "kind": st.just("teacher"),
            "task": st.sampled_from(["classification", "regression"]),
            "input_dim": small,
            "output_dim": st.sampled_from([2, 3, 1]),  # 1: invalid for classification
            "teacher_width": st.just(4),
            **splits,
        }
    ),
    st.fixed_dictionaries({"kind": st.just("spirals"), "arms": st.integers(2, 4), **splits}),
    st.fixed_dictionaries({"kind": st.just("moons"), **splits}),
    st.fixed_dictionaries(
        {
            "kind": st.just("parity"),
            "n_bits": st.integers(2, 6),
            "as_sequence": st.booleans(),
            **splits,
        }
    ),
    st.fixed_dictionaries(
        {"kind": st.just("digits"), "layout": st.sampled_from(["flat", "image"])}
    ),
    st.fixed_dictionaries({"kind": st.just("adding"), "length": st.integers(2, 6), **splits}),
    st.fixed_dictionaries(
        {
            "kind": st.just("copy"),
            "length": st.integers(1, 3),
            "symbols": st.integers(1, 3),
            "alphabet": st.integers(2, 4),
            **splits,
        }
    ),
    inline_data(),
]
# Each kind equally often (one_of would favour the kinds that shrink smallest).
data_bodies: st.SearchStrategy[dict[str, Any]] = st.sampled_from(DATA_KINDS).flatmap(
    lambda kind: kind
)


# --------------------------------------------------------------------------------------------
# Models

activation_layers = st.builds(
    lambda name, frequency, slope: {
        "type": "activation",
        "name": name,
        "frequency": frequency,
        "negative_slope": slope,
    },
    st.sampled_from(ACTIVATIONS),
    st.sampled_from([0.5, 1.0, 5.0]),
    st.sampled_from([0.01, 0.2]),
)
linear_layers = st.builds(
    lambda out, bias: {"type": "linear", "out": out, "bias": bias}, small, st.booleans()
)
maxout_layers = st.builds(
    lambda out, pieces: {"type": "maxout", "out": out, "pieces": pieces}, small, st.integers(2, 3)
)
recurrent_layers = st.builds(
    lambda kind, hidden, seq, nl: {
        "type": kind,
        "hidden": hidden,
        "return_sequences": seq,
        "nonlinearity": nl,
    },
    st.sampled_from(["rnn", "gru", "lstm"]),
    small,
    st.booleans(),
    st.sampled_from(["tanh", "relu"]),
)
conv_layers = st.builds(
    lambda out, k, s, p, bias: {
        "type": "conv2d",
        "out_channels": out,
        "kernel_size": k,
        "stride": s,
        "padding": p,
        "bias": bias,
    },
    st.integers(1, 3),
    st.integers(1, 3),
    st.integers(1, 2),
    st.integers(0, 1),
    st.booleans(),
)
pool_layers = st.builds(
    lambda kind, k, s: {"type": kind, "kernel_size": k, "stride": s},
    st.sampled_from(["max_pool", "avg_pool"]),
    st.integers(1, 2),
    st.sampled_from([None, 1, 2]),
)
norm_layers = st.sampled_from([{"type": "batch_norm"}, {"type": "layer_norm"}])
dropout_layers = st.builds(lambda p: {"type": "dropout", "p": p}, st.sampled_from([0.0, 0.3]))
flatten = st.just({"type": "flatten"})
# Any layer, whatever its input: the blind draws that make misfits.
blind_layers = st.one_of(
    linear_layers,
    conv_layers,
    pool_layers,
    flatten,
    activation_layers,
    norm_layers,
    dropout_layers,
    maxout_layers,
    recurrent_layers,
)


def rank_after(layer: dict[str, Any], rank: int) -> int:
    """The rank a layer's output has when it fits its input (a guide for the next draw)."""
    if layer["type"] == "flatten":
        return VECTOR
    if layer["type"] in ("rnn", "gru", "lstm"):
        return SEQUENCE if layer["return_sequences"] else VECTOR
    return rank


def fitting_layers(rank: int) -> st.SearchStrategy[dict[str, Any]]:
    """Layers that take an input of this rank."""
    common = [activation_layers, dropout_layers, flatten]
    if rank == VECTOR:
        return st.one_of(linear_layers, maxout_layers, norm_layers, *common)
    if rank == SEQUENCE:
        return st.one_of(
            linear_layers,
            maxout_layers,
            recurrent_layers,
            st.just({"type": "layer_norm"}),
            *common,
        )
    return st.one_of(conv_layers, pool_layers, norm_layers, *common)


@st.composite
def layer_list(draw: st.DrawFn, rank: int, nested: bool = False) -> tuple[list[Any], int]:
    layers: list[Any] = []
    for _ in range(draw(st.integers(1, 2 if nested else 4))):
        choice = draw(st.sampled_from(["fitting"] * 8 + ["blind", "residual"]))
        if choice == "blind":
            layer = draw(blind_layers)
        elif choice == "residual" and not nested:
            # A body that changes the rank cannot be added to its input: analyze refuses it.
            body, _ = draw(layer_list(rank, nested=True))
            layer = {"type": "residual", "body": body}
        else:
            layer = draw(fitting_layers(rank))
        layers.append(layer)
        rank = rank_after(layer, rank)
    return layers, rank


@st.composite
def layers_model(draw: st.DrawFn, rank: int, per_step: bool) -> dict[str, Any]:
    layers, rank = draw(layer_list(rank))
    if draw(weighted(4, 1)):  # usually close the body the way the head needs it
        if rank == IMAGE:
            layers.append({"type": "flatten"})
        elif rank == SEQUENCE and not per_step:
            layers.append({"type": draw(st.sampled_from(["rnn", "gru", "lstm"])), "hidden": 3})
    return {"layers": layers}


FAMILIES = {
    VECTOR: ["mlp", "resmlp"],
    SEQUENCE: ["rnn", "gru", "lstm"],
    IMAGE: ["cnn"],
}
RECURRENT_OPTIONS: dict[str, st.SearchStrategy[Any]] = {
    "rnn_nonlinearity": st.sampled_from(["tanh", "relu"]),
}
ALL_OPTIONS: dict[str, st.SearchStrategy[Any]] = {
    **RECURRENT_OPTIONS,
    "dropout": st.sampled_from([0.0, 0.2]),
    "activation": st.sampled_from(ACTIVATIONS),
    "frequency": st.sampled_from([1.0, 5.0]),
    "residual": st.booleans(),
    "normalization": st.sampled_from(["none", "batch", "layer"]),
}


def family_models(rank: int) -> st.SearchStrategy[dict[str, Any]]:
    """Mostly a family that suits the data's rank (with options it takes), sometimes any
    family with any options."""
    fitting = FAMILIES.get(rank, ["mlp"])
    options = RECURRENT_OPTIONS if rank == SEQUENCE else ALL_OPTIONS
    return st.one_of(
        family_options(st.sampled_from(fitting), options),
        family_options(st.sampled_from(fitting), options),
        family_options(st.sampled_from([f for fs in FAMILIES.values() for f in fs]), ALL_OPTIONS),
    )


def family_options(
    family: st.SearchStrategy[str], options: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    return st.fixed_dictionaries(
        {"family": family, "depth": st.integers(1, 3), "width": st.integers(1, 5)},
        optional=options,
    )


DATA = TypeAdapter(DataSpec)


def data_rank(data: dict[str, Any]) -> tuple[int, bool]:
    """Rank of the data's examples and whether it predicts per step (VECTOR if invalid)."""
    try:
        shape = data_shape(DATA.validate_python(data))
    except ValidationError:
        return VECTOR, False
    return len(shape.input_shape), shape.per_step


@st.composite
def request_bodies(draw: st.DrawFn) -> dict[str, Any]:
    data = draw(data_bodies)
    rank, per_step = data_rank(data)
    model = draw(st.one_of(family_models(rank), layers_model(rank, per_step)))
    scheme = draw(st.sampled_from(SCHEMES))
    init: dict[str, Any] = {"scheme": scheme}
    if draw(weighted(1, 5 if scheme == "default" else 1)):  # gain + default: invalid
        init["gain"] = draw(st.sampled_from([0.5, 1.0, 2.0]))
    if draw(st.booleans()):
        init["bias_std"] = 0.1
    if draw(st.booleans()):
        init["lstm_forget_bias"] = 1.0
    optimizer = {
        "lr": draw(st.sampled_from([1e-3, 0.05])),
        "momentum": draw(st.sampled_from([0.0, 0.9])),
        "nesterov": draw(weighted(1, 5)),
        "clip_grad_norm": draw(st.sampled_from([None, 1.0])),
        "schedule": {
            "kind": draw(st.sampled_from(["constant", "step", "cosine"])),
            "warmup_steps": draw(st.integers(0, 2)),
        },
    }
    training = {
        "steps": 1,
        "batch_size": draw(st.sampled_from([1, 2, 4, 8])),
        "device": "cpu",
        "loss": draw(st.sampled_from(["auto", "auto", "cross_entropy", "mse"])),
    }
    return {
        "spec_version": 1,
        "model": model,
        "init": init,
        "data": data,
        "optimizer": optimizer,
        "training": training,
        "diagnostics": {"preset": "off"},
    }


# --------------------------------------------------------------------------------------------
# The property


@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=request_bodies())
def test_valid_specs_train_and_invalid_ones_fail_cleanly(body):
    try:
        spec = ExperimentSpec.model_validate(body)
    except ValidationError:
        event("refused by validation")
        return
    try:
        analysis = analyze(spec)
    except ShapeError as exc:
        event(f"refused by analyze at {exc.loc[:2]}")
        assert exc.loc and exc.loc[0] in ("model", "training"), exc.loc
        assert exc.message
        return

    event(f"trained: {body['data']['kind']}, {len(analysis.output_shape)}-D output")
    result = run_experiment(spec)
    assert result["summary"]["outcome"] in ("completed", "diverged")
    json.dumps(result, allow_nan=False)  # the result is valid JSON as it stands

    torch.manual_seed(0)
    model = build_model(spec)
    assert sum(p.numel() for p in model.parameters()) == analysis.parameters
    data = make_dataset(spec.data, 0, CPU)
    model.eval()
    with torch.no_grad():
        out = model(data.x_val[:2])
    assert tuple(out.shape[1:]) == analysis.output_shape


@settings(max_examples=40, deadline=None, database=None)
@given(body=request_bodies())
def test_validation_is_all_or_nothing_and_round_trips(body):
    """A body either validates or raises ValidationError; a validated spec's JSON dump
    validates again to the same spec (what the service stores is what the worker reads)."""
    try:
        spec = ExperimentSpec.model_validate(body)
    except ValidationError:
        return
    again = ExperimentSpec.model_validate_json(spec.model_dump_json())
    assert again == spec
