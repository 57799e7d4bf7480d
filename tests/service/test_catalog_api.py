"""``GET /v1/catalog``: every vocabulary of the spec with the ranges the API accepts, the
server's budgets, and the spec's JSON Schema; the hand-written parts agree with the code."""

from __future__ import annotations

import math
from typing import Any, get_args

import pytest

from service.usecases.catalog import DIAGNOSTIC_GROUPS, INIT_SCHEMES, LAYER_INPUTS
from worker.core.spec import (
    PRESETS,
    ActivationName,
    DiagnosticGroup,
    ExperimentSpec,
    InitScheme,
    ShapeError,
    analyze,
)


@pytest.fixture(scope="module")
def catalog(api_server) -> dict[str, Any]:
    with api_server.client() as client:
        response = client.get("/v1/catalog")
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_name(items: list[dict[str, Any]], key: str = "name") -> dict[str, dict[str, Any]]:
    return {item[key]: item for item in items}


def test_families_with_their_fields_and_inputs(catalog):
    families = catalog["families"]
    assert families["names"] == ["mlp", "resmlp", "cnn", "rnn", "gru", "lstm", "transformer"]
    items = by_name(families["items"])
    assert {name: item["input"] for name, item in items.items()} == {
        "mlp": "vector", "resmlp": "vector", "cnn": "image",
        "rnn": "sequence", "gru": "sequence", "lstm": "sequence", "transformer": "sequence"}
    transformer = by_name(items["transformer"]["fields"])
    assert transformer["norm_position"]["enum"] == ["pre", "post", "none"]
    assert (transformer["heads"]["default"], transformer["heads"]["maximum"]) == (4, 64)
    assert transformer["residual_scale"]["default"] == 1.0
    assert "residual" not in transformer and items["mlp"]["fields"] is None
    assert "residual blocks" in items["resmlp"]["description"]
    fields = by_name(families["fields"])
    assert (fields["depth"]["minimum"], fields["depth"]["maximum"]) == (1, 128)
    assert fields["depth"]["required"] and not fields["activation"]["required"]
    assert fields["dropout"]["exclusive_maximum"] == 1
    assert fields["normalization"]["enum"] == ["none", "batch", "layer"]


def test_every_layer_type_with_parameters_and_ranges(catalog):
    layers = by_name(catalog["layer_types"], "type")
    assert set(layers) == set(LAYER_INPUTS)
    conv = by_name(layers["conv2d"]["parameters"])
    assert (conv["kernel_size"]["default"], conv["kernel_size"]["maximum"]) == (3, 15)
    assert conv["out_channels"]["required"]
    assert by_name(layers["dropout"]["parameters"])["p"]["exclusive_maximum"] == 1
    assert by_name(layers["lstm"]["parameters"])["hidden"]["minimum"] == 1
    body = by_name(layers["residual"]["parameters"])["body"]
    assert (body["type"], body["min_items"]) == ("array", 1)
    assert layers["rnn"]["inputs"] == ["sequence"]
    assert "type" not in by_name(layers["linear"]["parameters"])


def test_all_activations_with_kind_parameters_and_max_slope(catalog):
    activations = by_name(catalog["activations"])
    assert list(activations) == list(get_args(ActivationName))
    assert len(activations) == 14
    assert {a["kind"] for a in activations.values()} == {
        "linear", "relu_like", "saturating", "oscillating"}
    slopes = {name: a["max_abs_derivative"] for name, a in activations.items()}
    assert slopes["sigmoid"] == 0.25 and slopes["tanh"] == 1.0 and slopes["sin"] == 1.0
    assert slopes["triangle"] == pytest.approx(2 / math.pi)
    assert slopes["gelu"] == pytest.approx(1.1289, abs=1e-4)
    assert slopes["selu"] == pytest.approx(1.7581, abs=1e-4)
    frequency = by_name(activations["sin"]["parameters"])["frequency"]
    assert (frequency["exclusive_minimum"], frequency["maximum"]) == (0, 1000)
    assert [p["name"] for p in activations["leaky_relu"]["parameters"]] == ["negative_slope"]
    assert activations["relu"]["parameters"] == []


def test_init_datasets_optimizer_training(catalog):
    assert [s["name"] for s in catalog["init"]["schemes"]] == list(get_args(InitScheme))
    assert by_name(catalog["init"]["fields"])["lstm_forget_bias"]["nullable"]
    datasets = by_name(catalog["datasets"], "kind")
    assert list(datasets) == ["teacher", "spirals", "moons", "parity", "digits", "adding",
                              "copy", "inline", "token_copy", "token_sort",
                              "associative_recall", "modular_addition", "markov_language"]
    markov = datasets["markov_language"]["default_shape"]
    assert markov["per_step"] and markov["causal"]
    assert 0 < markov["min_cross_entropy"] < math.log(8)
    assert datasets["token_sort"]["default_shape"]["min_cross_entropy"] == 0.0
    adding = datasets["adding"]
    assert adding["default_shape"]["input_shape"] == [50, 2]
    assert adding["default_shape"]["sequence_length"] == 50
    assert by_name(adding["parameters"])["length"]["maximum"] == 10_000
    assert datasets["inline"]["default_shape"] is None
    assert by_name(datasets["inline"]["parameters"])["x"]["min_items"] == 4
    optimizer = by_name(catalog["optimizer"]["fields"])
    assert optimizer["momentum"]["exclusive_maximum"] == 1
    assert optimizer["clip_grad_norm"]["nullable"]
    assert optimizer["schedule"]["ref"] == "ScheduleSpec"
    schedule = by_name(catalog["optimizer"]["schedule_fields"])
    assert schedule["kind"]["enum"] == ["constant", "step", "cosine"]
    training = by_name(catalog["training"])
    assert training["batch_size"]["maximum"] == 65_536
    assert training["device"]["enum"] == ["auto", "cpu", "cuda"]


def test_diagnostic_groups_presets_budgets_and_schema(catalog, api_server):
    diagnostics = catalog["diagnostics"]
    assert [g["name"] for g in diagnostics["groups"]] == list(get_args(DiagnosticGroup))
    assert diagnostics["presets"] == {name: sorted(g) for name, g in PRESETS.items()}
    assert by_name(diagnostics["fields"])["groups"]["keys"] == list(get_args(DiagnosticGroup))
    settings = api_server.app.state.settings
    assert catalog["budgets"] == {
        "max_parameters": settings.max_parameters,
        "max_steps_x_batch": settings.max_steps_x_batch,
        "max_sequence_length": settings.max_sequence_length,
        "max_inline_bytes": settings.max_inline_bytes,
        "max_request_bytes": settings.max_request_bytes,
        "max_data_bytes": settings.max_data_bytes,
        "max_memory_bytes": settings.max_memory_bytes,
    }
    # every findings rule with its calibrated threshold and measured precision
    from worker.core.findings import RULES, load_calibration

    rules = {r["code"]: r for r in catalog["findings"]}
    assert list(rules) == [rule.code for rule in RULES]
    vanishing = rules["vanishing_gradients_at_init"]
    assert vanishing["threshold"] == load_calibration()[vanishing["code"]].threshold
    assert vanishing["calibrated"] and vanishing["precision"]["dev"] is not None
    assert catalog["spec_schema"] == ExperimentSpec.model_json_schema()


def test_the_hand_written_descriptions_cover_every_name():
    assert list(INIT_SCHEMES) == list(get_args(InitScheme))
    assert list(DIAGNOSTIC_GROUPS) == list(get_args(DiagnosticGroup))


# --- LAYER_INPUTS agrees with the shape analysis -------------------------------------------

DATA = {
    "vector": {"kind": "spirals", "n_train": 64, "n_val": 16},
    "sequence": {"kind": "adding", "length": 6, "n_train": 64, "n_val": 16},
    "image": {"kind": "digits", "layout": "image"},
}
LAYERS: dict[str, dict[str, Any]] = {
    "linear": {"out": 4}, "conv2d": {"out_channels": 2}, "max_pool": {}, "avg_pool": {},
    "flatten": {}, "activation": {"name": "relu"}, "batch_norm": {}, "layer_norm": {},
    "dropout": {}, "maxout": {"out": 4}, "rnn": {"hidden": 4}, "gru": {"hidden": 4},
    "lstm": {"hidden": 4}, "residual": {"body": [{"type": "activation", "name": "tanh"}]},
    "embedding": {"dim": 4}, "positional_encoding": {"kind": "sinusoidal"},
    "self_attention": {"causal": False}, "rms_norm": {}, "gated_mlp": {"hidden": 4},
    "sequence_pool": {}, "transformer_block": {"heads": 1, "causal": False},
}


@pytest.mark.parametrize("layer_type", list(LAYERS))
@pytest.mark.parametrize("kind", list(DATA))
def test_layer_inputs_match_the_shape_analysis(layer_type, kind):
    """A layer listed for an input kind passes the analysis on it; one not listed fails, at
    the layer itself (a flatten after it makes any output fit the head)."""
    layers = [{"type": layer_type, **LAYERS[layer_type]}, {"type": "flatten"}]
    spec = ExperimentSpec.model_validate({
        "spec_version": 1, "model": {"layers": layers}, "data": DATA[kind],
        "training": {"steps": 1, "batch_size": 8},
    })
    if kind in LAYER_INPUTS[layer_type]:
        analyze(spec)
    else:
        with pytest.raises(ShapeError) as raised:
            analyze(spec)
        assert raised.value.loc == ("model", "layers", 0)
