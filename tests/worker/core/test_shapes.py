"""The shape analysis (:func:`analyze`): layers that do not fit the data are refused with a
:class:`ShapeError` whose ``loc`` names the layer; the cnn family's pooling.
"""

from __future__ import annotations

from typing import Any

import pytest

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
    doc,
    inline,
    layers,
    lin,
    make,
    rec,
    res,
)
from worker.core.spec import ExperimentSpec, ShapeError, analyze


def test_cnn_family_pools_until_two_by_two():
    spec = make({"family": "cnn", "depth": 8, "width": 2}, IMG)
    a = analyze(spec)
    pools = [s for s in a.layer_shapes if s["type"] == "max_pool"]
    assert [p["out"][1:] for p in pools] == [[4, 4], [2, 2]]


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


# --- layers the analysis builds itself --------------------------------------------------------
# The analysis constructs layers from other fields: the head from the data (its width is the
# number of classes or targets), each family's blocks from width/dropout, the transformer's
# embedding from its width. Found on main: inline class ids >= 8192 built a head that failed
# its own validation inside analyze, an unhandled ValidationError (a 500). Each construction
# is driven here past its bounds (the outer field's validation bypassed with model_copy, as
# no request can) and must come out as a ShapeError naming the part of the spec.

MARKOV = {"kind": "markov_language", "vocab": 8, "order": 1, "length": 12, "n_train": 64,
          "n_val": 16}


def _bypassing(spec: ExperimentSpec, part: str, **fields: Any) -> ExperimentSpec:
    """``spec`` with ``fields`` of ``spec.<part>`` set without validation."""
    section = getattr(spec, part).model_copy(update=fields)
    return spec.model_copy(update={part: section})


INTERNAL_CONSTRUCTIONS = {
    "head from class ids": (make(layers(lin(8), act("relu")), inline([[0.0], [1.0]] * 8,
                                                                     [0, 1] * 8)),
                            "data", {"y": [0, 9000] * 8}, ("data",)),
    "head from teacher outputs": (make(layers(lin(8)), TEACHER), "data", {"output_dim": 9000},
                                  ("data",)),
    "head of a family": (make(MLP, TEACHER), "data", {"output_dim": 9000}, ("model",)),
    "mlp blocks": (make(MLP, VEC), "model", {"width": 10_000}, ("model",)),
    "resmlp stem": (make({"family": "resmlp", "depth": 2, "width": 8}, VEC), "model",
                    {"width": 10_000}, ("model",)),
    "mlp dropout": (make(MLP, VEC), "model", {"dropout": 1.5}, ("model",)),
    "cnn blocks": (make({"family": "cnn", "depth": 1, "width": 2}, IMG), "model",
                   {"width": 10_000}, ("model",)),
    "recurrent layers": (make({"family": "lstm", "depth": 1, "width": 4}, SEQ), "model",
                         {"width": 10_000}, ("model",)),
    "transformer embedding": (make({"family": "transformer", "depth": 1, "width": 8}, MARKOV),
                              "model", {"width": 10_000}, ("model",)),
}


@pytest.mark.parametrize("case", list(INTERNAL_CONSTRUCTIONS))
def test_hardening_2_every_internal_construction_fails_as_a_shape_error(case):
    """Hardening item 2: a layer the analysis builds and refuses is a ShapeError naming the
    data or the model (a 422), never a ValidationError (a 500)."""
    spec, part, fields, loc = INTERNAL_CONSTRUCTIONS[case]
    analyze(spec)  # the valid spec fits
    with pytest.raises(ShapeError) as refused:
        analyze(_bypassing(spec, part, **fields))
    assert refused.value.loc == loc
    assert refused.value.message.startswith("the design implies an invalid "), refused.value
