"""``POST /v1/specs/validate``: the dry run answers with the normalized design and its cost, or
with every error at once; it never stores or enqueues anything."""

from __future__ import annotations

from typing import Any

import pytest

from worker.core.budgets import data_bytes, memory_estimate
from worker.core.spec import ExperimentSpec, analyze

PROBLEM = "application/problem+json"


def validate(api, doc: Any) -> Any:
    return api.post("/v1/specs/validate", json=doc)


def problem_errors(response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 422 and body["instance"] == "/v1/specs/validate"
    assert body["type"].endswith("invalid-spec")
    errors: list[dict[str, Any]] = body["errors"]
    assert body["detail"].startswith(f"{len(errors)} error(s)")
    return errors


# --- valid specs: normalized, compiled, costed ------------------------------------------------


def test_a_family_spec_is_normalized_compiled_and_costed(api, broker, spec_doc):
    doc = spec_doc(model={"family": "mlp", "depth": 2, "width": 8, "normalization": "layer"})
    response = validate(api, doc)

    assert response.status_code == 200, response.text
    out = response.json()
    assert out["valid"] is True and out["model_form"] == "family"
    assert out["spec"]["optimizer"]["momentum"] == 0.9  # defaults filled in
    assert out["spec"]["diagnostics"]["preset"] == "standard"
    assert [layer["type"] for layer in out["layers"]] == [
        "linear", "layer_norm", "activation", "linear", "layer_norm", "activation", "linear"]
    assert out["layers"][-1] == {"type": "linear", "out": 2, "bias": True}  # the head
    assert out["layers"][2] == {"type": "activation", "name": "relu", "frequency": 1.0,
                                "negative_slope": 0.01, "alpha": 1.0}
    assert [(s["in"], s["out"]) for s in out["shapes"]] == [
        ([2], [8]), ([8], [8]), ([8], [8]), ([8], [8]), ([8], [8]), ([8], [8]), ([8], [2])]
    assert out["output_shape"] == [2]
    assert out["data"] == {"input_shape": [2], "output_dim": 2, "task": "classification",
                           "n_train": 64, "n_val": 16, "per_step": False,
                           "sequence_length": None}
    analysis = analyze(ExperimentSpec.model_validate(doc))
    cost = out["cost"]
    assert cost["parameters"] == analysis.parameters == 2 * 8 + 8 + 16 + 8 * 8 + 8 + 16 + 18
    assert cost["flops_per_step"] == analysis.flops_per_step(16)
    spec = ExperimentSpec.model_validate(doc)
    breakdown = memory_estimate(spec, analysis, 16)
    assert cost["memory_breakdown"] == breakdown
    assert cost["memory_bytes"] == sum(breakdown.values())
    assert cost["data_bytes"] == data_bytes(spec) == 80 * (2 * 4 + 8)
    assert (cost["total_steps"], cost["steps_x_batch"]) == (5, 80)
    assert cost["flops_total"] == 5 * cost["flops_per_step"]
    assert {b["limit"]: (b["value"], b["within"]) for b in out["budgets"]} == {
        "max_parameters": (analysis.parameters, True), "max_steps_x_batch": (80, True),
        "max_sequence_length": (0, True), "max_inline_bytes": (0, True),
        "max_data_bytes": (80 * 16, True), "max_memory_bytes": (cost["memory_bytes"], True)}
    broker.assert_untouched()


def test_a_layers_spec_is_echoed_with_defaults_and_the_head(api, broker, spec_doc):
    layers = [
        {"type": "linear", "out": 16},
        {"type": "residual", "body": [{"type": "activation", "name": "tanh"},
                                      {"type": "linear", "out": 16}]},
        {"type": "maxout", "out": 8},
        {"type": "dropout"},
    ]
    doc = spec_doc(model={"layers": layers})
    out = validate(api, doc).json()

    assert out["model_form"] == "layers"
    assert out["layers"][0] == {"type": "linear", "out": 16, "bias": True}
    assert out["layers"][1]["body"][1] == {"type": "linear", "out": 16, "bias": True}
    assert out["layers"][3] == {"type": "dropout", "p": 0.1}
    assert out["layers"][4] == {"type": "linear", "out": 2, "bias": True}
    residual = out["shapes"][1]
    assert residual["type"] == "residual" and residual["out"] == [16]
    assert [s["type"] for s in residual["body"]] == ["activation", "linear"]
    assert out["cost"]["parameters"] == analyze(ExperimentSpec.model_validate(doc)).parameters
    broker.assert_untouched()


def test_a_recurrent_spec_reports_its_sequence(api, spec_doc):
    doc = spec_doc(model={"family": "lstm", "depth": 2, "width": 8},
                   data={"kind": "adding", "length": 30, "n_train": 64, "n_val": 16})
    out = validate(api, doc).json()

    assert [(layer["type"], layer.get("return_sequences")) for layer in out["layers"]] == [
        ("lstm", True), ("lstm", False), ("linear", None)]
    assert out["data"]["sequence_length"] == 30
    assert out["cost"]["sequence_length"] == 30
    budgets = {b["limit"]: b for b in out["budgets"]}
    assert budgets["max_sequence_length"]["value"] == 30
    assert budgets["max_sequence_length"]["field"] == "data.length"


# --- invalid specs: every error at once ----------------------------------------------------


def test_every_schema_error_is_listed_at_once(api, broker, spec_doc):
    doc = spec_doc(model={"family": "mlp", "depth": 0, "width": 8, "colour": "red"},
                   data={"kind": "spirals", "arms": 1},
                   optimizer={"lr": -1.0})
    errors = problem_errors(validate(api, doc))

    assert sorted((e["field"], e["type"]) for e in errors) == [
        ("data.arms", "greater_than_equal"),
        ("model.colour", "extra_forbidden"),
        ("model.depth", "greater_than_equal"),
        ("optimizer.lr", "greater_than"),
    ]
    assert all(e["in"] == "body" and e["loc"][0] == "body" for e in errors)
    broker.assert_untouched()


def test_schema_shape_and_budget_errors_come_together(api, broker, spec_doc):
    """Errors in sections the shape analysis does not read (optimizer, an unknown field)
    do not hide the layer that does not fit, nor the budgets."""
    layers = [{"type": "linear", "out": 8}, {"type": "activation", "name": "relu"},
              {"type": "linear", "out": 8}, {"type": "conv2d", "out_channels": 4}]
    doc = spec_doc(model={"layers": layers},
                   optimizer={"lr": 0.1, "momentum": 1.5},
                   training={"steps": 1_000_000, "batch_size": 64},
                   colour="blue")
    errors = problem_errors(validate(api, doc))

    by_field = {e["field"]: e for e in errors}
    assert list(by_field) == ["optimizer.momentum", "colour", "model.layers.3", "training"]
    assert by_field["optimizer.momentum"]["type"] == "less_than"
    shape = by_field["model.layers.3"]
    assert shape["type"] == "invalid-design"
    assert shape["loc"] == ["body", "model", "layers", 3]
    assert "conv2d" in shape["msg"] and "image" in shape["msg"]
    budget = by_field["training"]
    assert (budget["type"], budget["limit"], budget["limit_value"], budget["value"]) == (
        "budget-exceeded", "max_steps_x_batch", 50_000_000, 64_000_000)
    broker.assert_untouched()


def test_a_shape_error_inside_a_residual_body_names_the_nested_layer(api, spec_doc):
    layers = [{"type": "linear", "out": 8},
              {"type": "residual", "body": [{"type": "activation", "name": "relu"},
                                            {"type": "max_pool"}]}]
    (error,) = problem_errors(validate(api, spec_doc(model={"layers": layers})))
    assert error["field"] == "model.layers.1.body.1"
    assert error["type"] == "invalid-design"


def test_a_family_that_does_not_fit_the_data_names_the_family(api, spec_doc):
    doc = spec_doc(model={"family": "cnn", "depth": 2, "width": 4})
    (error,) = problem_errors(validate(api, doc))
    assert error["field"] == "model.family"
    assert "image" in error["msg"]


def test_every_budget_exceeded_is_listed(api, spec_doc):
    doc = spec_doc(model={"family": "mlp", "depth": 100, "width": 2048},
                   training={"steps": 1_000_000, "batch_size": 64})
    errors = problem_errors(validate(api, doc))
    assert [(e["field"], e["limit"]) for e in errors] == [
        ("model", "max_parameters"), ("training", "max_steps_x_batch"),
        ("model", "max_memory_bytes")]  # 419M parameters x (weights, gradients, momentum)
    assert errors[0]["value"] > 5_000_000


def test_a_budget_beside_a_shape_error_is_still_reported(api, spec_doc):
    doc = spec_doc(model={"layers": [{"type": "rnn", "hidden": 4}]},
                   training={"steps": 1_000_000, "batch_size": 64})
    errors = problem_errors(validate(api, doc))
    assert [(e["field"], e["type"]) for e in errors] == [
        ("model.layers.0", "invalid-design"), ("training", "budget-exceeded")]


def test_errors_in_model_data_or_training_stop_the_shape_check(api, spec_doc):
    """Without a valid model, data and training there is nothing to analyze: only the schema
    errors are reported (never a spurious shape error)."""
    layers = [{"type": "conv2d", "out_channels": 4}]
    doc = spec_doc(model={"layers": layers}, training={"steps": -1, "batch_size": 16})
    errors = problem_errors(validate(api, doc))
    assert [(e["field"], e["type"]) for e in errors] == [
        ("training.steps", "greater_than_equal")]


@pytest.mark.parametrize(("raw", "error_type"), [
    (b'{"spec_version": 1, "model": ', "json_invalid"),
    (b"[1, 2]", "model_type"),
    (b'"spec"', "model_type"),
])
def test_malformed_bodies_are_422(api, broker, raw, error_type):
    response = api.post("/v1/specs/validate", content=raw,
                        headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    (error,) = response.json()["errors"]
    assert (error["field"], error["type"]) == ("body", error_type)
    broker.assert_untouched()


def test_a_missing_body_is_422(api):
    response = api.post("/v1/specs/validate")
    assert response.status_code == 422
    assert response.json()["errors"][0]["type"] == "missing"


def test_the_dry_run_and_a_submission_agree_on_a_shape_error(api, spec_doc):
    doc = spec_doc(model={"layers": [{"type": "linear", "out": 8}, {"type": "max_pool"}]})
    dry = problem_errors(validate(api, doc))
    submitted = api.post("/v1/experiments", json=doc).json()
    assert submitted["errors"] == dry
    assert submitted["type"].endswith("invalid-design")
