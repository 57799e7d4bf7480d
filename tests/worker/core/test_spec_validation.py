"""Invalid forms are refused by pydantic before any torch code runs, naming the field.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from tests.worker.conftest import MLP, SEQ, TEACHER, act, conv, doc, inline, layers, lin, res
from worker.core.spec import ExperimentSpec, InlineData


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
