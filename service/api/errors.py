"""Errors the API answers with, and the handlers that render every one as RFC 9457 problem+json.

The hierarchy (domain part in ``worker/core/errors.py``; HTTP status on the right)::

    TrainabilityError
    ├── Unavailable                      503 + Retry-After
    │   ├── StoreUnavailable             Redis (job store) unreachable or timed out
    │   ├── BrokerUnavailable            the task could not be enqueued
    │   ├── NotReady                     /readyz: a dependency or every worker is missing
    │   ├── StreamsFull                  this API process holds sse_max_streams streams
    │   └── PlotsBusy                    plot_max_pending drawings are waiting already
    ├── JobStoreError                    500 the store answered with an unexpected error
    ├── JobNotFound                      404 unknown or expired experiment id
    ├── SweepNotFound                    404 unknown or expired sweep id
    ├── RemediesNotFound                 404 no remedies were launched for the experiment
    ├── PlotUnavailable                  404 the result lacks what a plot needs
    ├── ResultNotReady                   409 report or plot of a job without a result
    ├── JobStateConflict                 409 transition not allowed (final states are final)
    ├── Unauthorized                     401 + WWW-Authenticate: no or unknown API key
    ├── QuotaExceeded                    429 + Retry-After: the key's queued+running limit
    ├── TooManyStreams                   429 + Retry-After: the key's open event streams
    └── InvalidRequest                   422 refused input, names the field
        ├── InvalidCursor                    a pagination cursor we did not issue
        ├── InvalidDesign                    the layers do not fit the data (names the layer)
        ├── InvalidSpec                      dry run: every error of one spec, all listed
        │   └── InvalidFields                    schema errors only (as FastAPI's own 422)
        ├── BudgetExceeded                   over a server budget, names the limit and value
        │   └── SweepTooLarge                    more sweep points than max_sweep_points
        ├── InvalidSweep                     sweep points that fail validation, all listed
        ├── IdempotencyKeyReused             an Idempotency-Key sent with another body
        └── CallbackRefused                  a callback_url the server will not call

Besides these, FastAPI's ``RequestValidationError`` (malformed JSON, unknown fields, wrong
types, out-of-range values) becomes a 422 listing every error with its field path, Starlette's
``HTTPException`` (unknown route, wrong method) keeps its status, and anything else is a 500
whose detail says nothing about internals. Routes raise domain errors, never HTTPException.
A body that cannot be parsed at all (nested too deeply, a number too long to read) is a 422
too, not FastAPI's 400.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.live.events import StreamsFull, TooManyStreams
from service.reports.render import PlotsBusy
from service.settings import ServiceSettings
from worker.core.errors import (
    BrokerUnavailable,
    BudgetExceeded,
    CallbackRefused,
    IdempotencyKeyReused,
    InvalidCursor,
    InvalidDesign,
    InvalidRequest,
    InvalidSweep,
    JobNotFound,
    JobStateConflict,
    JobStoreError,
    PlotUnavailable,
    QuotaExceeded,
    RemediesNotFound,
    ResultNotReady,
    StoreUnavailable,
    SweepNotFound,
    TrainabilityError,
    Unavailable,
)
from worker.core.field_paths import json_path as field_path

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"


class NotReady(Unavailable):
    """The service cannot take work now (``/readyz``)."""


class Unauthorized(TrainabilityError):
    """No API key, or one the server does not know (auth on: ``service/auth.py``)."""

    def __init__(self, message: str, *, invalid_token: bool = False) -> None:
        super().__init__(message)
        self.invalid_token = invalid_token


class InvalidSpec(InvalidRequest):
    """Every reason one spec is refused, found at once (``POST /v1/specs/validate``).

    ``errors`` are rendered problem entries: schema errors, the layer that does not fit,
    each budget exceeded.
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        fields = ", ".join(str(e["field"]) for e in errors[:5])
        more = f" and {len(errors) - 5} more" if len(errors) > 5 else ""
        super().__init__(f"{len(errors)} error(s): {fields}{more}",
                         field=str(errors[0]["field"]) if errors else "body")
        self.errors = errors


class InvalidFields(InvalidSpec):
    """Every schema error of a body read by hand, answered like FastAPI's own validation 422
    (a submission whose only errors are the schema's: ``service/usecases/submissions.py``)."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__(errors)
        fields = ", ".join(str(e["field"]) for e in errors[:5])
        self.args = (f"{len(errors)} invalid field(s): {fields}",)


# Most specific first: the first class the error is an instance of decides the answer.
_PROBLEMS: Sequence[tuple[type[TrainabilityError], int, str, str]] = (
    (BudgetExceeded, 422, "budget-exceeded", "Spec exceeds a server budget"),
    (InvalidCursor, 422, "invalid-cursor", "Invalid pagination cursor"),
    (InvalidDesign, 422, "invalid-design", "Layers do not fit the data"),
    (InvalidFields, 422, "validation-error", "Request validation failed"),
    (InvalidSpec, 422, "invalid-spec", "Spec is not valid"),
    (InvalidSweep, 422, "invalid-sweep", "Invalid sweep points"),
    (IdempotencyKeyReused, 422, "idempotency-key-reused", "Idempotency-Key reused"),
    (CallbackRefused, 422, "callback-refused", "Callback URL refused"),
    (InvalidRequest, 422, "invalid-request", "Invalid request"),
    (JobNotFound, 404, "not-found", "Experiment not found"),
    (SweepNotFound, 404, "sweep-not-found", "Sweep not found"),
    (RemediesNotFound, 404, "remedies-not-found", "Remedies not found"),
    (PlotUnavailable, 404, "plot-unavailable", "Plot not available"),
    (ResultNotReady, 409, "no-result", "Experiment has no result"),
    (JobStateConflict, 409, "conflict", "Experiment state conflict"),
    (Unauthorized, 401, "unauthorized", "Authentication required"),
    (QuotaExceeded, 429, "too-many-jobs", "Too many active experiments"),
    (TooManyStreams, 429, "too-many-streams", "Too many open event streams"),
    (StreamsFull, 503, "streams-full", "Event streams at capacity"),
    (PlotsBusy, 503, "plots-busy", "Plots busy"),
    (NotReady, 503, "not-ready", "Service not ready"),
    (StoreUnavailable, 503, "store-unavailable", "Job store unavailable"),
    (BrokerUnavailable, 503, "broker-unavailable", "Task broker unavailable"),
    (Unavailable, 503, "unavailable", "Dependency unavailable"),
    (JobStoreError, 500, "store-error", "Job store error"),
    (TrainabilityError, 500, "internal", "Internal error"),
)


def problem(
    request: Request,
    status: int,
    *,
    type_: str = "about:blank",
    title: str | None = None,
    detail: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    """An RFC 9457 response; ``instance`` is the request path."""
    body: dict[str, Any] = {
        "type": type_,
        "title": title or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "instance": request.url.path,
        **extra,
    }
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _settings(request: Request) -> ServiceSettings:
    settings: ServiceSettings = request.app.state.settings
    return settings


async def handle_domain_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TrainabilityError)
    settings = _settings(request)
    status, slug, title = next((s, g, t) for cls, s, g, t in _PROBLEMS if isinstance(exc, cls))
    extra: dict[str, Any] = {}
    headers: dict[str, str] = {}
    if isinstance(exc, InvalidSweep | InvalidSpec):  # every error of the request, listed
        extra["errors"] = exc.errors
    elif isinstance(exc, InvalidRequest):
        extra["errors"] = [invalid_request_entry(exc)]
    detail = str(exc)
    if isinstance(exc, Unauthorized):
        challenge = 'Bearer realm="trainability"'
        if exc.invalid_token:
            challenge += ', error="invalid_token"'
        headers["WWW-Authenticate"] = challenge
    elif isinstance(exc, QuotaExceeded | TooManyStreams):
        headers["Retry-After"] = str(settings.retry_after_s)
    if isinstance(exc, Unavailable):
        headers["Retry-After"] = str(settings.retry_after_s)
        log.warning("%s on %s: %s", type(exc).__name__, request.url.path, exc)
        if not isinstance(exc, NotReady):  # addresses and driver errors stay in the log
            detail = f"{title.lower()}; retry in {settings.retry_after_s} s"
    elif status >= 500:
        log.error("%s on %s", type(exc).__name__, request.url.path, exc_info=exc)
        detail = "an unexpected error occurred; it has been logged"
    return problem(request, status, type_=settings.problem_type_base + slug, title=title,
                   detail=detail, headers=headers, **extra)


def invalid_request_entry(exc: InvalidRequest) -> dict[str, Any]:
    """The ``errors`` entry of a refused field (a budget entry also names limit and value)."""
    slug = next(g for cls, _s, g, _t in _PROBLEMS if isinstance(exc, cls))
    path = [int(p) if p.isdigit() else p for p in exc.field.split(".")]  # list indexes: ints
    entry: dict[str, Any] = {
        "field": exc.field, "loc": [exc.location, *path], "in": exc.location,
        "msg": str(exc), "type": slug,
    }
    if isinstance(exc, BudgetExceeded):
        entry.update(limit=exc.limit, limit_value=exc.limit_value, value=exc.value)
    return entry


def validation_error_entries(errors: Sequence[Any], body: Any) -> list[dict[str, Any]]:
    """``errors`` entries of pydantic errors whose ``loc`` starts with where the value was
    (``body``, ``query``, ...); body paths drop union tags (:func:`field_path`)."""
    entries = []
    for err in errors:
        where, *loc = err.get("loc") or ("body",)
        msg = str(err.get("msg", "invalid"))
        if err.get("type") == "json_invalid":
            position = loc[0] if loc else "?"
            msg = f"malformed JSON at character {position}: {err.get('ctx', {}).get('error', '')}"
            loc = []
        path = field_path(loc, body) if where == "body" else loc
        if where == "body" and not path and err.get("type") in ("model_attributes_type",
                                                                  "model_type"):
            msg = "the body must be a JSON object (Content-Type: application/json)"
        entries.append({
            "field": ".".join(str(p) for p in path) or str(where),
            "loc": [where, *path],
            "in": where,
            "msg": msg,
            "type": err.get("type", "value_error"),
        })
    return entries


async def handle_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    settings = _settings(request)
    errors = validation_error_entries(exc.errors(), exc.body)
    fields = ", ".join(e["field"] for e in errors[:5])
    return problem(
        request, 422, type_=settings.problem_type_base + "validation-error",
        title="Request validation failed",
        detail=f"{len(errors)} invalid field(s): {fields}", errors=errors,
    )


#: What FastAPI says (a 400) when ``json.loads`` of a body fails with something other than a
#: syntax error: nesting deeper than the parser's recursion limit, an integer with more digits
#: than Python converts. The body is JSON the server will not read: a 422 like any other.
_UNREADABLE_BODY = "There was an error parsing the body"


async def handle_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 400 and exc.detail == _UNREADABLE_BODY:
        return problem(
            request, 422, type_=_settings(request).problem_type_base + "validation-error",
            title="Request validation failed",
            detail="the body could not be read as JSON: nested too deeply or a number too long",
            errors=[{"field": "body", "loc": ["body"], "in": "body",
                     "msg": "JSON nested too deeply or with a number too long to read",
                     "type": "json_invalid"}],
        )
    detail = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
    return problem(request, exc.status_code, detail=detail, headers=dict(exc.headers or {}))


async def handle_unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem(request, 500, type_=_settings(request).problem_type_base + "internal",
                   detail="an unexpected error occurred; it has been logged")


def install_error_handlers(app: FastAPI) -> None:
    """Route every error to problem+json."""
    app.add_exception_handler(TrainabilityError, handle_domain_error)
    app.add_exception_handler(RequestValidationError, handle_validation_error)
    app.add_exception_handler(StarletteHTTPException, handle_http_error)
    app.add_exception_handler(Exception, handle_unexpected_error)
