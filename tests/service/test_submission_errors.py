"""A submission reports every error at once, like the dry run (``POST /v1/specs/validate``):
schema errors, the layer that does not fit, every budget exceeded, and the job's own fields
(``tags``, ``callback_url``); nothing is queued. Sweeps list every problem of every point."""

from __future__ import annotations

from typing import Any

PROBLEM = "application/problem+json"
THREE = {  # the README's dry-run example: a schema error, a shape error, a budget exceeded
    "model": {"layers": [{"type": "linear", "out": 32}, {"type": "activation", "name": "relu"},
                         {"type": "conv2d", "out_channels": 8}]},
    "optimizer": {"lr": -0.1},
    "training": {"steps": 1_000_000, "batch_size": 64},
}


def refused(response) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    return body


def test_three_errors_are_three_entries_as_in_the_dry_run(api, broker, spec_doc):
    doc = spec_doc(**THREE)
    body = refused(api.post("/v1/experiments", json=doc))
    dry = refused(api.post("/v1/specs/validate", json=doc))
    assert [(e["field"], e["type"]) for e in body["errors"]] == [
        ("optimizer.lr", "greater_than"), ("model.layers.2", "invalid-design"),
        ("training", "budget-exceeded")]
    assert body["errors"] == dry["errors"]
    assert body["type"].endswith("invalid-spec") and body["detail"].startswith("3 error(s)")
    assert body["instance"] == "/v1/experiments"
    broker.assert_untouched()


def test_the_jobs_own_fields_are_listed_with_the_specs_errors(api, broker, spec_doc):
    doc = {**spec_doc(**THREE), "tags": ["ok", "not ok"], "callback_url": 7}
    fields = [e["field"] for e in refused(api.post("/v1/experiments", json=doc))["errors"]]
    assert sorted(fields[:3]) == ["callback_url", "optimizer.lr", "tags.1"]
    assert fields[3:] == ["model.layers.2", "training"]
    broker.assert_untouched()


def test_schema_errors_alone_stay_a_validation_error_listing_each(api, broker, spec_doc):
    doc = spec_doc(model={"family": "mlp", "depth": 0, "width": 8}, optimizer={"lr": -1})
    body = refused(api.post("/v1/experiments", json={**doc, "tags": ["a b"]}))
    assert body["type"].endswith("validation-error")
    assert body["title"] == "Request validation failed"
    assert body["detail"].startswith("3 invalid field(s)")
    assert sorted(e["field"] for e in body["errors"]) == ["model.depth", "optimizer.lr",
                                                         "tags.0"]
    assert all(e["in"] == "body" and e["loc"][0] == "body" for e in body["errors"])
    broker.assert_untouched()


def test_errors_in_independent_sections_do_not_hide_a_budget(api, broker, spec_doc):
    doc = spec_doc(optimizer={"lr": 0.1, "momentum": 1.5},
                   training={"steps": 1_000_000, "batch_size": 64})
    errors = refused(api.post("/v1/experiments", json={**doc, "colour": "blue"}))["errors"]
    assert [e["field"] for e in errors] == ["optimizer.momentum", "colour", "training"]
    broker.assert_untouched()


def test_a_valid_submission_with_tags_is_accepted(api, broker, spec_doc):
    response = api.post("/v1/experiments", json={**spec_doc(), "tags": ["fine"]})
    assert response.status_code == 202, response.text
    assert broker.queued("cpu") == 1


def test_a_sweep_lists_every_problem_of_every_point(api, broker, spec_doc):
    base = spec_doc(training={"steps": 1_000_000, "batch_size": 64})
    body = {"base": base, "axes": {"model.depth": [2, 100], "model.width": [2048]}}
    errors = refused(api.post("/v1/sweeps", json=body))["errors"]
    by_point = [(e["point"], e.get("limit")) for e in errors]
    assert by_point == [
        (0, "max_steps_x_batch"),
        (1, "max_parameters"), (1, "max_steps_x_batch"), (1, "max_memory_bytes")]
    broker.assert_untouched()
