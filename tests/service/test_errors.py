"""The error boundary: every answer is problem+json, and field paths read like the document."""

from __future__ import annotations

import pytest
from fastapi import FastAPI

from worker.core.field_paths import json_path as field_path

PROBLEM = "application/problem+json"


def test_an_unexpected_error_is_a_500_problem_without_internals(live_api):
    def add_failing_route(app: FastAPI) -> None:
        @app.get("/boom")
        def boom() -> None:
            raise RuntimeError("secret internals")

    with live_api(setup=add_failing_route) as server, server.client() as client:
        response = client.get("/boom")
    assert response.status_code == 500
    assert response.headers["content-type"] == PROBLEM
    body = response.json()
    assert body["status"] == 500 and body["instance"] == "/boom"
    assert "secret" not in response.text


def test_openapi_and_docs_are_served(api):
    schema = api.get("/openapi.json")
    assert schema.status_code == 200
    assert {"/v1/experiments", "/v1/experiments/{job_id}", "/healthz", "/readyz"} <= set(
        schema.json()["paths"])
    assert api.get("/docs").status_code == 200


BODY = {
    "model": {"family": "mlp", "depth": "x", "extra": 1},
    "data": {"kind": "spirals", "arms": 1},
    "layers_model": {"layers": [{"type": "linear", "out": "x"}]},
}


@pytest.mark.parametrize(("loc", "expected"), [
    (("data", "spirals", "arms"), ["data", "arms"]),  # tagged union member
    (("model", "family", "depth"), ["model", "depth"]),  # tag that is also a key's name
    (("model", "family", "family"), ["model", "family"]),
    (("model", "family", "missing"), ["model", "missing"]),
    (("model", "family", "extra"), ["model", "extra"]),
    (("model", "family"), ["model", "family"]),
    (("layers_model", "layers", "layers", 0, "linear", "out"),
     ["layers_model", "layers", 0, "out"]),
    (("training",), ["training"]),
])
def test_field_path_drops_union_tags(loc, expected):
    assert field_path(loc, BODY) == expected
