"""Reading a submission (``POST /v1/experiments``): every reason it is refused, at once.

The body is read as plain JSON, like the dry run's (``service/usecases/dry_run.py``), so that
a schema error does not hide the layer that does not fit or a budget exceeded. The answer:

- only schema errors: ``InvalidFields``, every one listed (as FastAPI's own validation 422);
- one design or budget error and nothing else: that error (its own problem type);
- otherwise ``InvalidSpec`` listing all: schema errors by field path, the layer that does not
  fit, every budget exceeded — the dry run's list, plus the job's own fields (``tags``,
  ``callback_url``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from service.api.errors import (
    InvalidFields,
    InvalidSpec,
    invalid_request_entry,
    validation_error_entries,
)
from service.schemas.experiments import SUBMISSION_FIELDS, ExperimentCreate
from service.usecases.dry_run import design_problems
from worker.core.budgets import spec_problems
from worker.core.settings import Settings


def read_submission(body: Any, settings: Settings) -> ExperimentCreate:
    """``body`` as a valid submission within the budgets, or the refusal naming every error."""
    try:
        submission: ExperimentCreate | None = ExperimentCreate.model_validate(body)
        schema: list[Any] = []
    except ValidationError as exc:
        submission = None
        schema = exc.errors(include_url=False)
    if submission is not None:
        problems = spec_problems(submission, settings)
    elif isinstance(body, dict):
        design = {k: v for k, v in body.items() if k not in SUBMISSION_FIELDS}
        problems = design_problems(design, settings)
    else:
        problems = []
    if not schema and not problems:
        assert submission is not None
        return submission
    if not schema and len(problems) == 1:
        raise problems[0]
    entries = validation_error_entries([{**e, "loc": ("body", *e["loc"])} for e in schema], body)
    if not problems:
        raise InvalidFields(entries)
    raise InvalidSpec(entries + [invalid_request_entry(p) for p in problems])
