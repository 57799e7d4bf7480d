"""Typed errors of the client, built from the service's problem+json (RFC 9457) answers.

::

    TrainabilityError                 any failed call; .status, .problem, .title, .detail
    ├── BadRequest                    400
    ├── Unauthorized                  401 missing or wrong API key
    ├── Forbidden                     403
    ├── NotFound                      404 unknown or expired id, or no such route
    ├── Conflict                      409 e.g. a plot of an experiment without a result
    ├── PayloadTooLarge               413 request body over the server's limit
    ├── ValidationFailed              422 .errors: one entry per refused field (field, msg, ...)
    ├── RateLimited                   429 .retry_after
    ├── ServerError                   5xx other than 503
    ├── Unavailable                   503 .retry_after: the service or its Redis is down
    │   └── ConnectionFailed          no HTTP answer at all (refused, DNS, timeout)
    └── WaitTimeout                   wait() gave up before the job ended (also a TimeoutError)
"""

from __future__ import annotations

import json
from typing import Any

#: Exit statuses of the ``trainability`` command (trainability_client/cli.py).
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOT_FOUND, EXIT_UNAVAILABLE, EXIT_AUTH, EXIT_TIMEOUT = (
    0, 1, 2, 3, 4, 5, 6)


class TrainabilityError(Exception):
    """Base of every error the client raises."""

    def __init__(self, message: str, *, status: int | None = None,
                 problem: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.problem: dict[str, Any] = problem or {}

    @property
    def title(self) -> str | None:
        value = self.problem.get("title")
        return str(value) if value is not None else None

    @property
    def detail(self) -> str | None:
        value = self.problem.get("detail")
        return str(value) if value is not None else None

    @property
    def type(self) -> str | None:
        value = self.problem.get("type")
        return str(value) if value is not None else None


class BadRequest(TrainabilityError):
    pass


class Unauthorized(TrainabilityError):
    pass


class Forbidden(TrainabilityError):
    pass


class NotFound(TrainabilityError):
    pass


class Conflict(TrainabilityError):
    pass


class PayloadTooLarge(TrainabilityError):
    pass


class ValidationFailed(TrainabilityError):
    """422: the request was refused; ``errors`` names every field (``field``, ``msg``, ...)."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        errors = self.problem.get("errors")
        return list(errors) if isinstance(errors, list) else []


class _RetryAfter(TrainabilityError):
    def __init__(self, message: str, *, status: int | None = None,
                 problem: dict[str, Any] | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, status=status, problem=problem)
        self.retry_after = retry_after


class RateLimited(_RetryAfter):
    pass


class Unavailable(_RetryAfter):
    """The service answered 503 (e.g. its Redis is down) or could not be reached."""


class ConnectionFailed(Unavailable):
    """No HTTP answer: connection refused, name not resolved, or the request timed out."""


class ServerError(TrainabilityError):
    pass


class WaitTimeout(TrainabilityError, TimeoutError):
    """``wait`` ran out of time; ``last`` is the experiment (or sweep) as last seen."""

    def __init__(self, message: str, last: Any = None) -> None:
        super().__init__(message)
        self.last = last


_BY_STATUS: dict[int, type[TrainabilityError]] = {
    400: BadRequest, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: PayloadTooLarge, 422: ValidationFailed, 429: RateLimited, 503: Unavailable,
}


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: rare here; the caller falls back to its own backoff


def error_from_response(status: int, body: bytes, headers: Any) -> TrainabilityError:
    """The typed error for a non-2xx answer (problem+json when the server sent one)."""
    try:
        parsed = json.loads(body) if body else {}
    except ValueError:
        parsed = {}
    problem: dict[str, Any] = parsed if isinstance(parsed, dict) else {}
    if not problem:
        problem = {"status": status, "title": body.decode(errors="replace")[:200] or None}
    cls = _BY_STATUS.get(status, ServerError if status >= 500 else TrainabilityError)
    title = problem.get("title") or f"HTTP {status}"
    detail = problem.get("detail")
    message = f"{status} {title}" + (f": {detail}" if detail else "")
    if cls is ValidationFailed and isinstance(problem.get("errors"), list):
        fields = "; ".join(f"{e.get('field')}: {e.get('msg')}" for e in problem["errors"][:8]
                           if isinstance(e, dict))
        if fields:
            message += f" [{fields}]"
    if issubclass(cls, _RetryAfter):
        return cls(message, status=status, problem=problem,
                   retry_after=_retry_after(headers.get("retry-after")))
    return cls(message, status=status, problem=problem)
