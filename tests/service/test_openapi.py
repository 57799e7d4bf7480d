"""The OpenAPI document: typed results, problem+json errors, every reference resolvable."""

from __future__ import annotations

import json
from typing import Any

import pytest

from worker.core.result import ExperimentResult

PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def openapi(api_server) -> dict[str, Any]:
    with api_server.client() as client:
        response = client.get("/openapi.json")
    assert response.status_code == 200
    document: dict[str, Any] = response.json()
    return document


def operations(openapi: dict[str, Any]):
    for path, item in openapi["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def test_every_error_response_is_problem_json(openapi):
    seen = 0
    for path, method, operation in operations(openapi):
        for code, response in operation["responses"].items():
            if code[0] in "45":
                seen += 1
                assert list(response.get("content", {})) == [PROBLEM], (path, method, code)
                schema = response["content"][PROBLEM]["schema"]
                assert schema == {"$ref": "#/components/schemas/Problem"}, (path, method, code)
    assert seen > 5
    schemas = openapi["components"]["schemas"]
    assert "HTTPValidationError" not in schemas  # FastAPI's default 422 body, never sent
    problem = schemas["Problem"]["properties"]
    assert {"type", "title", "status", "detail", "instance", "errors", "limit"} <= set(problem)


def test_operations_with_a_body_document_the_413(openapi):
    with_body = [(p, m, op) for p, m, op in operations(openapi) if "requestBody" in op]
    assert ("/v1/specs/validate", "post") in {(p, m) for p, m, _ in with_body}
    for path, method, operation in with_body:
        assert "413" in operation["responses"], (path, method)


def test_the_experiment_result_is_documented_field_by_field(openapi):
    schemas = openapi["components"]["schemas"]
    result = schemas["ExperimentPublic"]["properties"]["result"]
    refs = [option.get("$ref") for option in result["anyOf"]]
    assert "#/components/schemas/ExperimentResult" in refs
    documented = schemas["ExperimentResult"]["properties"]
    assert set(documented) == set(ExperimentResult.model_fields)
    assert "final_val_loss" in schemas["Summary"]["properties"]
    assert "memory_horizon" in schemas["RecurrentThroughTime"]["properties"]
    assert not [name for name in schemas if "__" in name]  # no module-qualified name clashes


def test_new_routes_are_tagged_and_every_reference_resolves(openapi):
    paths = openapi["paths"]
    assert paths["/v1/specs/validate"]["post"]["tags"] == ["specs"]
    assert paths["/v1/catalog"]["get"]["tags"] == ["catalog"]
    body = paths["/v1/specs/validate"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"]["$ref"] == "#/components/schemas/ExperimentSpec"
    text = json.dumps(openapi)
    names = set(openapi["components"]["schemas"])
    prefix = '"#/components/schemas/'
    referenced = {part.split('"', 1)[0] for part in text.split(prefix)[1:]}
    assert referenced <= names, referenced - names
