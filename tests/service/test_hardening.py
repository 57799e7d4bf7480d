"""Inputs found to hurt the service on main: each is now a clear 422 naming the field.

- inline class ids >= 8192 were a 500 on submit, dry run and sweeps (the head layer built from
  them failed validation inside shape analysis) and reset the keep-alive connection;
- a 2,000,000 x 4096 dataset passed the dry run (796,656 bytes estimated) and made a worker
  allocate 61 GiB: no budget covered the data.
"""

from __future__ import annotations

from typing import Any

import pytest

PROBLEM = "application/problem+json"
BIG_CLASS = {"kind": "inline", "x": [[0.0], [1.0], [0.0], [1.0], [1.0]], "y": [0, 1, 0, 9000, 1]}
HUGE_DATA = {"kind": "teacher", "input_dim": 4096, "n_train": 1_000_000, "n_val": 1_000_000}


def errors_of(response) -> list[dict[str, Any]]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    return list(response.json()["errors"])


def post(api, route: str, doc: dict[str, Any]):
    if route == "/v1/sweeps":
        return api.post(route, json={"base": doc, "axes": {"training.seed": [0, 1]}})
    return api.post(route, json=doc)


ROUTES = ["/v1/experiments", "/v1/specs/validate", "/v1/sweeps"]


@pytest.mark.parametrize("route", ROUTES)
def test_class_ids_beyond_the_widest_head_are_a_422_naming_data_y(api, broker, spec_doc, route):
    """Hardening item 2: inline class ids >= 8192 are a 422 naming data.y, not a 500."""
    doc = spec_doc(model={"family": "mlp", "depth": 1, "width": 16}, data=BIG_CLASS)
    errors = errors_of(post(api, route, doc))
    assert any(e["field"].endswith("data.y") and "8192" in e["msg"] for e in errors), errors
    # the connection is still good: the next request on it is answered
    assert api.get("/healthz").status_code == 200
    broker.assert_untouched()


@pytest.mark.parametrize("route", ROUTES)
def test_a_dataset_beyond_the_data_budget_is_refused_before_any_work(api, broker, spec_doc,
                                                                     route):
    """Hardening item 1: the 2,000,000 x 4096 dataset is refused by the data and memory
    budgets."""
    doc = spec_doc(model={"family": "mlp", "depth": 1, "width": 16}, data=HUGE_DATA,
                   training={"steps": 1, "batch_size": 16})
    errors = errors_of(post(api, route, doc))
    data = [e for e in errors if e.get("limit") == "max_data_bytes"]
    assert data and data[0]["field"].endswith("data")
    assert data[0]["value"] == 2_000_000 * (4096 * 4 + 8) > data[0]["limit_value"]
    memory = [e for e in errors if e.get("limit") == "max_memory_bytes"]
    assert memory and memory[0]["value"] > 2 * data[0]["value"] > memory[0]["limit_value"]
    broker.assert_untouched()


def test_the_dry_run_estimate_counts_the_data(api, spec_doc):
    """Hardening item 1: the dry run's memory estimate counts the data (on main: 796,656
    bytes for 61 GiB)."""
    doc = spec_doc(model={"family": "mlp", "depth": 1, "width": 16},
                   data={"kind": "teacher", "input_dim": 256, "n_train": 100_000, "n_val": 1000})
    cost = api.post("/v1/specs/validate", json=doc).json()["cost"]
    assert cost["data_bytes"] == 101_000 * (256 * 4 + 8)
    assert cost["memory_breakdown"]["data"] == 2 * cost["data_bytes"]
    assert cost["memory_bytes"] == sum(cost["memory_breakdown"].values()) > cost["data_bytes"]
