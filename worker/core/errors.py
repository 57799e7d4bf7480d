"""Domain errors shared by the worker and the service (torch-free, HTTP-free).

Third-party errors (Redis, kombu) are translated into these at the boundary with
``raise ... from exc``; the service maps each class to one problem+json response
(``service/api/errors.py``)::

    TrainabilityError
    ├── Unavailable              a dependency is down; retry later          (503 + Retry-After)
    │   ├── StoreUnavailable     Redis (job store) unreachable or timed out
    │   └── BrokerUnavailable    the task could not be enqueued
    ├── JobStoreError            the store answered but the operation failed       (500)
    ├── JobNotFound              unknown or expired job id                         (404)
    ├── SweepNotFound            unknown or expired sweep id                       (404)
    ├── RemediesNotFound         no remedies were launched for the experiment      (404)
    ├── PlotUnavailable          the result lacks what a plot or report needs      (404)
    ├── ResultNotReady           the experiment has no result yet                  (409)
    ├── JobStateConflict         transition not allowed (final states are final)   (409)
    ├── QuotaExceeded            the caller has too many queued or running jobs    (429)
    └── InvalidRequest           the request is well-formed but refused            (422)
        ├── InvalidCursor        a pagination cursor we did not issue
        ├── InvalidDesign        the layers do not fit the data or training (names the layer)
        ├── BudgetExceeded       the spec exceeds a server budget (names the limit)
        │   └── SweepTooLarge    more sweep points than the server allows
        ├── InvalidSweep         sweep points that fail validation (one error per field)
        ├── IdempotencyKeyReused an Idempotency-Key sent again with another body
        └── CallbackRefused      a callback_url outside the webhook allowlist
"""

from __future__ import annotations


class TrainabilityError(Exception):
    """Base of every error this project raises on purpose."""


class Unavailable(TrainabilityError):
    """A dependency is unreachable; the same request may succeed later."""


class StoreUnavailable(Unavailable):
    """The job store (Redis) did not answer."""


class BrokerUnavailable(Unavailable):
    """The task broker did not accept the task."""


class JobStoreError(TrainabilityError):
    """The job store answered with an error that is not about availability."""


class JobNotFound(TrainabilityError):
    """No job with this id (never created, or expired after the retention period)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no experiment with id {job_id!r}")
        self.job_id = job_id


class JobStateConflict(TrainabilityError):
    """A status transition that the job's current status does not allow."""

    def __init__(self, job_id: str, current: str, wanted: str, reason: str = "") -> None:
        message = f"job {job_id} is {current}; cannot move it to {wanted}"
        super().__init__(f"{message} ({reason})" if reason else message)
        self.job_id = job_id
        self.current = current
        self.wanted = wanted


class InvalidRequest(TrainabilityError):
    """Refused input that passed schema validation; ``field`` is its dotted path."""

    def __init__(self, message: str, *, field: str, location: str = "body") -> None:
        super().__init__(message)
        self.field = field
        self.location = location


class InvalidCursor(InvalidRequest):
    """A pagination cursor that is malformed or was not issued by us."""

    def __init__(self) -> None:
        super().__init__("cursor is not valid; use next_cursor from a previous page",
                         field="cursor", location="query")


class InvalidDesign(InvalidRequest):
    """The model's layers cannot take the data's shapes, or a training choice rules them out;
    ``field`` is the offending layer's path (``model.layers.3``)."""


class BudgetExceeded(InvalidRequest):
    """The spec asks for more than a server budget allows."""

    def __init__(self, *, limit: str, limit_value: int, value: int, field: str) -> None:
        super().__init__(
            f"{limit} is {limit_value:,} but the spec requires {value:,}", field=field
        )
        self.limit = limit
        self.limit_value = limit_value
        self.value = value


class SweepNotFound(TrainabilityError):
    """No sweep with this id (never created, or expired after the retention period)."""

    def __init__(self, sweep_id: str) -> None:
        super().__init__(f"no sweep with id {sweep_id!r}")
        self.sweep_id = sweep_id


class RemediesNotFound(TrainabilityError):
    """No remedies sweep for this experiment (never launched, or expired)."""

    def __init__(self, job_id: str) -> None:
        super().__init__(f"no remedies were started for experiment {job_id!r}; "
                         f"POST /v1/experiments/{job_id}/remedies starts them")
        self.job_id = job_id


class ResultNotReady(TrainabilityError):
    """A report or plot was asked for an experiment that has no result (yet)."""

    def __init__(self, job_id: str, status: str) -> None:
        super().__init__(f"experiment {job_id} is {status} and has no result to show")
        self.job_id = job_id
        self.status = status


class PlotUnavailable(TrainabilityError):
    """The result does not hold what the plot needs (e.g. a diagnostic group was off)."""


class SweepTooLarge(BudgetExceeded):
    """The axes expand to more points than ``max_sweep_points``."""

    def __init__(self, *, limit_value: int, value: int) -> None:
        InvalidRequest.__init__(
            self, f"max_sweep_points is {limit_value:,} but the axes expand to {value:,} points",
            field="axes",
        )
        self.limit = "max_sweep_points"
        self.limit_value = limit_value
        self.value = value


class InvalidSweep(InvalidRequest):
    """Sweep points that fail spec validation or budgets; ``errors`` lists every problem.

    Each error is a dict with ``field`` (dotted path inside the point's spec, prefixed by
    ``points.<i>``), ``msg``, ``type``, the point's index and its varied values.
    """

    def __init__(self, errors: list[dict[str, object]]) -> None:
        points = sorted({int(str(e["point"])) for e in errors if e.get("point") is not None})
        shown = ", ".join(str(p) for p in points[:10])
        message = (f"{len(points)} sweep point(s) invalid: {shown}" if points
                   else f"{len(errors)} invalid sweep field(s)")
        super().__init__(message, field=str(errors[0]["field"]) if errors else "axes")
        self.errors = errors


class QuotaExceeded(TrainabilityError):
    """The caller already has as many queued and running jobs as its API key allows."""

    def __init__(self, *, owner: str, limit: int) -> None:
        super().__init__(
            f"API key {owner!r} already has {limit} queued or running experiments (its limit); "
            "wait for one to finish or cancel one"
        )
        self.owner = owner
        self.limit = limit


class IdempotencyKeyReused(InvalidRequest):
    """The same ``Idempotency-Key`` came with a different request body."""

    def __init__(self, job_id: str) -> None:
        super().__init__(
            f"this Idempotency-Key was used for a different request body (experiment {job_id}); "
            "use a new key for a new request",
            field="Idempotency-Key", location="header",
        )
        self.job_id = job_id


class CallbackRefused(InvalidRequest):
    """A ``callback_url`` the server will not call (scheme, allowlist, address)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, field="callback_url")
