"""Transformer layers, the ``transformer`` family and the token tasks in the spec: validation,
shape analysis (every bad combination names its layer), budgets, and the Markov language's
exact entropy against brute-force enumeration."""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from pydantic import ValidationError

from worker.core.budgets import budget_violations, estimate_cost
from worker.core.settings import Settings
from worker.core.spec import ExperimentSpec, ShapeError, analyze, data_shape
from worker.core.spec.layers import MAX_DEPTH, MAX_WIDTH
from worker.core.spec.tokens import markov_min_cross_entropy, markov_table
from worker.core.spec.transformer import MAX_BLOCKS, MAX_DIM

MARKOV: dict[str, Any] = {"kind": "markov_language", "vocab": 8, "order": 1, "length": 12,
                          "n_train": 64, "n_val": 16}
COPY: dict[str, Any] = {"kind": "token_copy", "length": 4, "alphabet": 6, "causal": False,
                        "n_train": 64, "n_val": 16}


def spec(model: dict[str, Any], data: dict[str, Any] | None = None, **extra: Any):
    return ExperimentSpec.model_validate({
        "spec_version": 1, "model": model, "data": data or MARKOV,
        "training": {"steps": 10, "batch_size": 8}, **extra})


def refusal(model: dict[str, Any], data: dict[str, Any] | None = None) -> tuple[Any, str]:
    with pytest.raises(ShapeError) as raised:
        analyze(spec(model, data))
    return raised.value.loc, raised.value.message


def test_bounds_agree_with_the_layers_module():
    assert (MAX_DIM, MAX_BLOCKS) == (MAX_WIDTH, MAX_DEPTH)


def test_the_family_compiles_to_layers():
    a = analyze(spec({"family": "transformer", "depth": 3, "width": 16}))
    assert [layer.type for layer in a.layers] == [
        "embedding", "positional_encoding", *["transformer_block"] * 3, "layer_norm"]
    post = analyze(spec({"family": "transformer", "depth": 2, "width": 16,
                         "norm_position": "post", "positional": "none", "norm": "rms_norm"},
                        {"kind": "adding", "length": 5, "n_train": 64, "n_val": 16}))
    assert [layer.type for layer in post.layers] == [
        "embedding", "transformer_block", "transformer_block", "sequence_pool"]
    assert post.layers[-1].mode == "last"  # causal: the last step has seen the sequence


@pytest.mark.parametrize("model, loc, words", [
    ({"layers": [{"type": "embedding", "dim": 6}, {"type": "self_attention", "heads": 4}]},
     ("model", "layers", 1), "4 heads do not divide the width 6"),
    ({"layers": [{"type": "embedding", "dim": 8, "vocab": 9}]},
     ("model", "layers", 0), "vocab is 9 but the data has 8"),
    ({"layers": [{"type": "flatten"}, {"type": "transformer_block", "heads": 1}]},
     ("model", "layers", 1), "needs a sequence"),
    ({"layers": [{"type": "embedding", "dim": 8}, {"type": "sequence_pool"}]},
     ("model", "layers", 1), "predicts every step"),
    ({"layers": [{"type": "self_attention", "causal": False}]},
     ("model", "layers", 0), "attention must be causal"),
    ({"layers": [{"type": "residual", "body": [{"type": "transformer_block", "heads": 2,
                                                 "causal": False}]}]},
     ("model", "layers", 0, "body", 0), "attention must be causal"),
    ({"family": "transformer", "depth": 2, "width": 8, "causal": False},
     ("model", "causal"), "attention must be causal"),
])
def test_bad_designs_name_the_layer(model, loc, words):
    got_loc, message = refusal(model)
    assert got_loc == loc and words in message, (got_loc, message)


def test_image_rms_norm_and_family_on_vectors_are_refused():
    assert refusal({"layers": [{"type": "conv2d", "out_channels": 2}, {"type": "rms_norm"},
                               {"type": "flatten"}]},
                   {"kind": "digits", "layout": "image"})[0] == ("model", "layers", 1)
    assert refusal({"family": "transformer", "depth": 1, "width": 8},
                   {"kind": "spirals", "n_train": 64, "n_val": 16})[0] == ("model", "family")


@pytest.mark.parametrize("model, field", [
    ({"family": "transformer", "depth": 2, "width": 10}, "heads (4) must divide width (10)"),
    ({"family": "transformer", "depth": 2, "width": 8, "residual_scale": "deepnorm"},
     "Post-LN rule"),
    ({"family": "transformer", "depth": 2, "width": 8, "residual_scale": 0}, "(0, 10]"),
    ({"family": "transformer", "depth": 2, "width": 8, "residual_scale": "half"}, "rezero"),
    ({"family": "transformer", "depth": 2, "width": 8, "residual": True}, "Extra inputs"),
    ({"layers": [{"type": "transformer_block", "norm_position": "middle"}]}, "'pre'"),
])
def test_invalid_options_are_validation_errors(model, field):
    with pytest.raises(ValidationError) as raised:
        spec(model)
    assert field in str(raised.value)


def test_bidirectional_tasks_take_bidirectional_attention():
    analyze(spec({"family": "transformer", "depth": 1, "width": 8, "causal": False}, COPY))
    analyze(spec({"family": "transformer", "depth": 1, "width": 8}, COPY))  # causal is fine


def test_parameters_flops_and_attention_memory_grow_as_they_should():
    def cost(steps: int, depth: int, width: int) -> Any:
        return estimate_cost(spec({"family": "transformer", "depth": depth, "width": width},
                                  {**MARKOV, "length": steps}))

    base = cost(16, 2, 16)
    assert cost(32, 2, 16).parameters - base.parameters == 16 * 16  # learned positions only
    # scores and probabilities: heads x steps^2 per block, kept for the backward pass, so 4x
    # the steps is more than 4x the activations (measured 7.7x)
    longer = cost(64, 2, 16).memory_breakdown["train_activations"]
    assert longer > 6 * base.memory_breakdown["train_activations"]
    assert cost(16, 4, 16).flops_per_step > 1.9 * base.flops_per_step


def test_sequence_length_budget_names_the_length():
    settings = Settings(max_sequence_length=20)
    bad = spec({"family": "transformer", "depth": 1, "width": 8}, {**MARKOV, "length": 30})
    (violation,) = [v for v in budget_violations(bad, settings) if v.limit ==
                    "max_sequence_length"]
    assert violation.field == "data.length" and violation.value == 30


def test_token_shapes():
    shape = data_shape(spec({"depth": 1, "width": 2}, COPY).data)
    assert (shape.input_shape, shape.output_dim, shape.per_step) == ((9, 8), 8, True)
    assert not shape.causal and shape.min_cross_entropy == 0.0
    recall = {"kind": "associative_recall", "pairs": 3, "keys": 5, "values": 4}
    shape = data_shape(spec({"depth": 1, "width": 2}, recall).data)
    assert shape.input_shape == (2 * 3 + 1 + 1, 2 + 5 + 4) and shape.causal
    modular = data_shape(spec({"depth": 1, "width": 2},
                              {"kind": "modular_addition", "modulus": 7}).data)
    assert (modular.n_train, modular.n_val, modular.input_shape) == (24, 25, (3, 9))
    with pytest.raises(ValidationError, match="at least pairs"):
        spec({"depth": 1, "width": 2}, {**recall, "keys": 2})
    with pytest.raises(ValidationError, match="at most"):
        spec({"depth": 1, "width": 2}, {**MARKOV, "vocab": 100, "order": 2})


def _brute_force_entropy(vocab: int, order: int, length: int, table: list[list[float]]) -> float:
    """Expected per-step cross-entropy of the true conditionals, over every string."""
    total = 0.0
    for string in itertools.product(range(vocab), repeat=length + 1):
        p = vocab ** -order  # the first ``order`` tokens are uniform
        loss = (order - 1) * math.log(vocab) if order > 1 else 0.0
        for t in range(order, length + 1):
            context = 0
            for token in string[t - order:t]:
                context = context * vocab + token
            q = table[context][string[t]]
            p *= q
            loss -= math.log(q)
        total += p * loss
    return total / length


@pytest.mark.parametrize("vocab, order, length", [(2, 1, 6), (3, 1, 5), (2, 2, 7), (3, 2, 4)])
def test_markov_entropy_matches_enumeration(vocab, order, length):
    table = markov_table(vocab, order, 0.5, 3)
    exact = markov_min_cross_entropy(vocab, order, length, 0.5, 3)
    assert exact == pytest.approx(_brute_force_entropy(vocab, order, length, table), rel=1e-10)
    assert 0 < exact < math.log(vocab)


def test_markov_entropy_limits():
    assert markov_min_cross_entropy(4, 1, 20, 100.0, 0) == pytest.approx(math.log(4), rel=0.01)
    assert markov_min_cross_entropy(4, 1, 20, 0.01, 0) < 0.15 * math.log(4)
