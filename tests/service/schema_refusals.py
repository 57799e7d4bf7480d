"""A check of our own on the API's answers to schemathesis (``test_schemathesis.py`` runs it on
every answer to a request generated as valid).

``schema_level_refusal``: a request generated from the schema as *valid* must
not be refused for a reason the schema could have stated: a 422 whose errors are only
schema-level (a type, a missing or unknown field, a bound, a pattern, a cursor) means the
OpenAPI document accepts what the server rejects (depth 65.0, steps with epochs, a cursor
that matches the documented pattern). Refusals the schema cannot express stay allowed:
server budgets, layers that do not fit the data, callbacks outside the allowlist, cross-field
rules (``value_error``), sweep points that fail, and ``invalid-request`` answers of a use case.
"""

from __future__ import annotations

from typing import Any

#: 422 error types that a JSON schema cannot express (semantic refusals).
SEMANTIC = frozenset({
    "value_error", "budget-exceeded", "invalid-design", "callback-refused", "invalid-request",
    "idempotency-key-reused", "invalid-sweep", "sweep-too-large",
})


def schema_level_refusal(status: int, body: Any) -> str | None:
    """Why a 422 to a schema-valid request is one the schema could have stated, or None."""
    if status != 422 or not isinstance(body, dict):
        return None
    problem = str(body.get("type", "")).rsplit(":", 1)[-1]
    if problem in SEMANTIC:  # e.g. invalid-sweep: points that fail as specs, listed
        return None
    errors = body.get("errors") or []
    schema_level = [e for e in errors if isinstance(e, dict) and e.get("type") not in SEMANTIC]
    if not schema_level:
        return None
    return "; ".join(f"{e.get('field')}: {e.get('type')} ({e.get('msg')})"
                     for e in schema_level[:3])
