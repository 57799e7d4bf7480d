"""The OpenAPI document, with every error answer documented as ``application/problem+json``.

FastAPI files every response model under ``application/json`` and adds its own 422 schema
(``HTTPValidationError``) that this API never sends. The document is generated as usual, then
every 4xx/5xx response of every operation gets the
:class:`~service.schemas.experiments.Problem` schema
under ``application/problem+json``, and operations that take a body also list the 413 of the
body size limit (``service/api/middleware.py``), which answers for every route.

A length bound on a union of arrays is written ``minItems``/``maxItems``: pydantic writes the
string keywords (``minLength``) there, which a validator ignores for arrays.

A tagged union (``discriminator``) names its tag as required in every member: pydantic
gives the tag a default, so the member alone would accept an object without it, which the
server refuses (it cannot tell which member is meant).

An event stream (``text/event-stream``) is described event by event: before OpenAPI 3.2 a
sequential media type's ``schema`` is one event, ``{"event", "data", "id", "retry"}`` with
``data`` a JSON string whose ``contentSchema`` is that event's model
(``service/schemas/events.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from service.api.errors import PROBLEM_JSON
from service.schemas.events import EVENTS
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
        document_event_streams(schema)
        require_discriminators(schema)
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


def _event_schema(name: str, model_name: str) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name, "description": "The event's name."},
            "id": {"type": "string", "description": "Sequence number within the stream."},
            "retry": {"type": "integer", "description": "Reconnection delay (ms)."},
            "data": {"type": "string", "contentMediaType": "application/json",
                     "contentSchema": {"$ref": _REF.format(model=model_name)},
                     "description": f"One line of JSON: {model_name}."},
        },
    }


def document_event_streams(schema: dict[str, Any]) -> None:
    """Rewrite ``schema`` in place: every ``text/event-stream`` answer, event by event."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    for model in EVENTS.values():
        components.setdefault(model.__name__, model.model_json_schema(ref_template=_REF))
    one_event = {"oneOf": [_event_schema(name, model.__name__) for name, model in EVENTS.items()]}
    for path_item in schema.get("paths", {}).values():
        for operation in path_item.values():
            if not isinstance(operation, dict):
                continue
            for response in operation.get("responses", {}).values():
                stream = response.get("content", {}).get("text/event-stream")
                if stream is not None:
                    stream["schema"] = json.loads(json.dumps(one_event))


def require_discriminators(schema: dict[str, Any]) -> None:
    """Rewrite ``schema`` in place: a union's tag is required in each of its members, and a
    union of arrays has its length bounds as array keywords."""
    components = schema.get("components", {}).get("schemas", {})

    def visit(node: Any) -> None:
        if isinstance(node, dict):
            members = node.get("anyOf") or []
            if members and all(isinstance(m, dict) and m.get("type") == "array"
                               for m in members):
                for text, items in (("minLength", "minItems"), ("maxLength", "maxItems")):
                    if text in node:
                        node[items] = node.pop(text)
            tag = (node.get("discriminator") or {}).get("propertyName")
            if tag:
                for member in node.get("oneOf", []):
                    ref = member.get("$ref", "") if isinstance(member, dict) else ""
                    target = components.get(ref.rsplit("/", 1)[-1]) if ref else member
                    if isinstance(target, dict) and tag in target.get("properties", {}):
                        required = target.setdefault("required", [])
                        if tag not in required:
                            required.append(tag)
            for value in node.values():
                visit(value)
        elif isinstance(node, list):
            for value in node:
                visit(value)

    visit(schema)

