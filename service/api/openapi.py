"""The OpenAPI document, with every error answer documented as ``application/problem+json``.

FastAPI files every response model under ``application/json`` and adds its own 422 schema
(``HTTPValidationError``) that this API never sends. The document is generated as usual, then
every 4xx/5xx response of every operation gets the
:class:`~service.schemas.experiments.Problem` schema
under ``application/problem+json``, and operations that take a body also list the 413 of the
body size limit (``service/api/middleware.py``), which answers for every route.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.api.errors import PROBLEM_JSON
from service.schemas.problems import Problem

_REF = "#/components/schemas/{model}"
_UNUSED_IF_UNREFERENCED = ("HTTPValidationError", "ValidationError")


def problem_openapi(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """A replacement for ``app.openapi`` (built once, then cached like FastAPI's)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, summary=app.summary,
            description=app.description, routes=app.routes, tags=app.openapi_tags,
        )
        document_problems(schema)
        app.openapi_schema = schema
        return schema

    return openapi


def document_problems(schema: dict[str, Any]) -> None:
    """Rewrite ``schema`` in place: problem+json for every error response."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    problem = Problem.model_json_schema(ref_template=_REF)
    for name, definition in problem.pop("$defs", {}).items():
        components.setdefault(name, definition)
    components.setdefault("Problem", problem)
    content = {PROBLEM_JSON: {"schema": {"$ref": _REF.format(model="Problem")}}}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict) or "responses" not in operation:
                continue
            responses = operation["responses"]
            if "requestBody" in operation and "413" not in responses:
                responses["413"] = {"description": "Request body over max_request_bytes"}
            for code, response in responses.items():
                if code[:1] in ("4", "5"):
                    response["content"] = json.loads(json.dumps(content))
                    if code == "422":
                        response["description"] = (
                            "Refused input: every error listed with its field path"
                        )
    for name in _UNUSED_IF_UNREFERENCED:  # in order: the first refers to the second
        definition = components.pop(name, None)
        if definition is not None and _REF.format(model=name) in json.dumps(schema):
            components[name] = definition  # still used somewhere: keep it
