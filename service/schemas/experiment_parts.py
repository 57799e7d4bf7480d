"""``GET /v1/experiments/{id}?fields=summary,findings``: an experiment with some of its result.

A result can be megabytes (curves, one entry per probe per layer); a client that wants the
verdict asks for the parts it needs. ``fields`` names top-level parts of the result
(``RESULT_PARTS``); the schema's pattern says exactly which, so a bad name is a 422 naming
``fields`` before anything is read.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Annotated

from fastapi import Query
from pydantic import Field, ValidationError

from service.schemas.experiments import ExperimentPublic
from worker.core.result import RESULT_PARTS, ExperimentResult, ExperimentResultPart
from worker.jobs.records import JobRecord

log = logging.getLogger(__name__)

_PART = "|".join(RESULT_PARTS)
FieldsParam = Annotated[str | None, Query(
    pattern=rf"^({_PART})(,({_PART}))*$",
    description="Only these parts of the result, comma-separated (e.g. summary,findings); "
    f"parts: {', '.join(RESULT_PARTS)}. Default: the whole result.",
)]


class ExperimentView(ExperimentPublic):
    """An experiment as ``GET /v1/experiments/{id}`` answers it: with the whole result, or,
    with ``?fields=``, only the parts asked for."""

    result: ExperimentResult | ExperimentResultPart | None = Field(
        description="The result once final (complete when succeeded, partial when timed out "
        "or cancelled during training); with ?fields= only the parts named there."
    )

    @classmethod
    def of(cls, job: JobRecord, fields: str | None) -> ExperimentPublic:
        if fields is None:
            return ExperimentPublic.from_record(job)
        wanted = fields.split(",")
        public = ExperimentPublic.from_record(dataclasses.replace(job, result=None))
        part, error = None, public.error
        if job.is_final and job.result is not None:
            try:
                part = ExperimentResultPart.model_validate(
                    {name: job.result[name] for name in wanted if name in job.result})
            except ValidationError as exc:  # as ExperimentPublic: the job stays readable
                log.warning("job %s: stored result does not match the result schema: %s",
                            job.id, exc)
                error = error or "the stored result does not match this server's result schema"
        return cls(**{**dict(public), "result": part, "error": error})
