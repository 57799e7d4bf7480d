"""A schemathesis check of our own (loaded with SCHEMATHESIS_HOOKS by test_schemathesis.py).

``schema_says_what_the_server_does``: a request generated from the schema as *valid* must
not be refused for a reason the schema could have stated: a 422 whose errors are only
schema-level (a type, a missing or unknown field, a bound, a pattern, a cursor) means the
OpenAPI document accepts what the server rejects (depth 65.0, steps with epochs, a cursor
that matches the documented pattern). Refusals the schema cannot express stay allowed:
server budgets, layers that do not fit the data, callbacks outside the allowlist, cross-field
rules (``value_error``), sweep points that fail, and ``invalid-request`` answers of a use case.
"""

from __future__ import annotations

from typing import Any

import schemathesis

#: 422 error types that a JSON schema cannot express (semantic refusals).
SEMANTIC = frozenset({
    "value_error", "budget-exceeded", "invalid-design", "callback-refused", "invalid-request",
    "idempotency-key-reused", "invalid-sweep", "sweep-too-large",
})


@schemathesis.check
def schema_says_what_the_server_does(ctx: Any, response: Any, case: Any) -> bool | None:
    meta = case.meta
    if meta is None or not meta.generation.mode.is_positive or response.status_code != 422:
        return None
    try:
        body = response.json()
    except ValueError:
        return None
    errors = body.get("errors") or []
    problem = str(body.get("type", "")).rsplit(":", 1)[-1]
    if problem in SEMANTIC:  # e.g. invalid-sweep: points that fail as specs, listed
        return None
    schema_level = [e for e in errors if e.get("type") not in SEMANTIC]
    if schema_level:
        raise AssertionError(
            "a request valid by the schema was refused for a reason the schema could state: "
            + "; ".join(f"{e.get('field')}: {e.get('type')} ({e.get('msg')})"
                        for e in schema_level[:3]))
    return None
