"""Server budgets: each is a 422 naming the limit, its value, the spec's value and the field;
an oversized body is a 413 before it is read. Nothing refused reaches the job store or queue.

The API here runs with small budgets so that small requests cross them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from worker.core.budgets import budget_checks, budget_violations, check_budgets, estimate_cost
from worker.core.errors import BudgetExceeded, InvalidDesign
from worker.core.settings import Settings
from worker.core.spec import ExperimentSpec

PROBLEM = "application/problem+json"
LIMITS = {
    "max_parameters": 10_000,
    "max_steps_x_batch": 100_000,
    "max_sequence_length": 100,
    "max_inline_bytes": 2_000,
    "max_request_bytes": 16_384,
}


@pytest.fixture(scope="module")
def small_server(server_with) -> Iterator[Any]:
    with server_with(**LIMITS) as server:
        yield server


@pytest.fixture
def small(small_server, broker) -> Iterator[httpx.Client]:
    """A client of the small-budget API; ``broker`` (same database) starts empty."""
    with small_server.client() as client:
        yield client


def spec(**sections: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "spec_version": 1,
        "model": {"family": "mlp", "depth": 1, "width": 8},
        "data": {"kind": "spirals", "n_train": 64, "n_val": 16},
        "training": {"steps": 10, "batch_size": 16, "device": "cpu"},
    }
    doc.update(sections)
    return doc


def rnn(**data: Any) -> dict[str, Any]:
    return spec(model={"family": "rnn", "depth": 1, "width": 4}, data=data)


INLINE_SEQUENCES = {"kind": "inline", "x": [[[0.5]] * 150] * 4, "y": [0, 1, 0, 1]}
INLINE_SEQUENCES_DOC = rnn(**INLINE_SEQUENCES)
INLINE_LARGE = {"kind": "inline", "x": [[0.123456789, -0.987654321]] * 80, "y": [0, 1] * 40}

CASES = [
    pytest.param(spec(model={"family": "mlp", "depth": 2, "width": 100}), "max_parameters",
                 "model", 10_602, id="parameters"),
    pytest.param(spec(training={"steps": 10_000, "batch_size": 16}), "max_steps_x_batch",
                 "training", 160_000, id="steps-x-batch"),
    pytest.param(spec(training={"epochs": 5_000, "batch_size": 16}), "max_steps_x_batch",
                 "training", 5_000 * 4 * 16, id="epochs-x-batch"),
    pytest.param(rnn(kind="adding", length=101, n_train=64, n_val=16), "max_sequence_length",
                 "data.length", 101, id="adding"),
    pytest.param(
        spec(model={"layers": [{"type": "rnn", "hidden": 4, "return_sequences": True}]},
             data={"kind": "copy", "length": 80, "symbols": 10, "n_train": 64, "n_val": 16}),
        "max_sequence_length", "data", 101, id="copy"),
    pytest.param(rnn(kind="parity", n_bits=64, as_sequence=True, n_train=64, n_val=16),
                 "max_sequence_length", "data.n_bits", 64, id="parity-within"),
    pytest.param(INLINE_SEQUENCES_DOC, "max_sequence_length", "data.x", 150,
                 id="inline-sequences"),
    pytest.param(spec(data=INLINE_LARGE), "max_inline_bytes", "data",
                 len(json.dumps(INLINE_LARGE["x"], separators=(",", ":")))
                 + len(json.dumps(INLINE_LARGE["y"], separators=(",", ":"))),
                 id="inline-bytes"),
]


@pytest.mark.parametrize(("doc", "limit", "field", "value"), CASES)
def test_each_budget_is_a_422_naming_limit_value_and_field(small, broker, doc, limit, field,
                                                           value):
    response = small.post("/v1/experiments", json=doc)

    if value <= LIMITS[limit]:  # the within-budget control case
        assert response.status_code == 202, response.text
        return
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    # every budget exceeded is listed, this one first; one error alone is its own problem type
    error, *others = body["errors"]
    assert body["type"].endswith("invalid-spec" if others else "budget-exceeded")
    assert (error["limit"], error["limit_value"], error["value"], error["field"]) == (
        limit, LIMITS[limit], value, field)
    assert all(e["type"] == "budget-exceeded" for e in others)
    if doc is INLINE_SEQUENCES_DOC:  # 4 x 150 steps as JSON: also over max_inline_bytes
        assert [e["limit"] for e in others] == ["max_inline_bytes"]
    assert error["loc"] == ["body", *field.split(".")]
    assert f"{limit} is {LIMITS[limit]:,} but the spec requires {value:,}" == error["msg"]
    broker.assert_untouched()


def test_the_dry_run_lists_every_budget_exceeded(small, broker):
    doc = rnn(kind="adding", length=200, n_train=64, n_val=16)
    doc["model"]["width"] = 64  # 4,288 + 65 parameters: within
    doc["training"] = {"steps": 10_000, "batch_size": 16}

    body = small.post("/v1/specs/validate", json=doc).json()

    assert {(e["limit"], e["value"]) for e in body["errors"]} == {
        ("max_steps_x_batch", 160_000), ("max_sequence_length", 200)}
    broker.assert_untouched()


# --- request body size: 413 before the body is read ------------------------------------------


def assert_too_large(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 413, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert (body["status"], body["limit"], body["limit_value"]) == (413, "max_request_bytes",
                                                                    16_384)
    assert "max_request_bytes" in body["detail"]
    assert body["type"].endswith("request-too-large")
    return body


def oversized_body() -> bytes:
    doc = spec(name="x" * 10, data={"kind": "inline", "x": [[0.5, 0.5]] * 2_000,
                                    "y": [0, 1] * 1_000})
    raw = json.dumps(doc).encode()
    assert len(raw) > 16_384
    return raw


@pytest.mark.parametrize("path", ["/v1/experiments", "/v1/specs/validate"])
def test_a_declared_content_length_over_the_limit_is_413(small, broker, path):
    raw = oversized_body()
    response = small.post(path, content=raw, headers={"content-type": "application/json"})

    body = assert_too_large(response)
    assert body["value"] == len(raw)
    assert f"{len(raw):,}" in body["detail"]
    broker.assert_untouched()


def chunks(raw: bytes, size: int = 4096) -> Iterator[bytes]:
    for start in range(0, len(raw), size):
        yield raw[start:start + size]


def test_a_chunked_body_is_counted_and_refused_once_over_the_limit(small, broker):
    raw = oversized_body()
    response = small.post("/v1/experiments", content=chunks(raw),
                          headers={"content-type": "application/json"})

    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in response.request.headers
    body = assert_too_large(response)
    assert 16_384 < body["value"] <= len(raw)  # counted up to the piece that crossed it
    broker.assert_untouched()


def test_a_chunked_body_within_the_limit_is_read_as_usual(small, broker):
    raw = json.dumps(spec()).encode()
    response = small.post("/v1/experiments", content=chunks(raw, 64),
                          headers={"content-type": "application/json"})

    assert response.status_code == 202, response.text
    assert broker.queued("cpu") == 1


# --- the budget functions the routes (and sweeps) share ------------------------------------


def test_budget_violations_lists_all_and_check_budgets_raises_the_first():
    settings = Settings(**{k: v for k, v in LIMITS.items() if k != "max_request_bytes"})
    doc = rnn(kind="adding", length=150, n_train=64, n_val=16)
    doc["model"]["width"] = 100
    doc["training"] = {"steps": 10_000, "batch_size": 16}
    s = ExperimentSpec.model_validate(doc)

    violations = budget_violations(s, settings)
    assert [v.limit for v in violations] == [
        "max_parameters", "max_steps_x_batch", "max_sequence_length"]
    with pytest.raises(BudgetExceeded) as raised:
        check_budgets(s, settings)
    assert raised.value.limit == "max_parameters"
    checks = {c.limit: c for c in budget_checks(s, settings)}
    assert checks["max_inline_bytes"].within and checks["max_inline_bytes"].value == 0
    assert not checks["max_sequence_length"].within


def test_cost_of_a_spec_whose_layers_do_not_fit_is_an_invalid_design():
    doc = spec(model={"layers": [{"type": "conv2d", "out_channels": 4}]})
    with pytest.raises(InvalidDesign) as raised:
        estimate_cost(ExperimentSpec.model_validate(doc))
    assert raised.value.field == "model.layers.0"


def test_cost_counts_what_the_run_will_do():
    s = ExperimentSpec.model_validate(spec(training={"epochs": 3, "batch_size": 100}))
    cost = estimate_cost(s)
    assert cost.batch_size == 64  # capped to the 64 training examples
    assert (cost.steps, cost.steps_x_batch) == (3, 300)
    assert cost.flops_total == 3 * cost.flops_per_step
    assert cost.sequence_length is None and cost.inline_bytes == 0
