"""``/v1/experiments/{id}/remedies``: try each fix of a finished experiment's findings as a
twin experiment, and see what it changed."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from service.api.deps import (
    CallerDep,
    DispatcherDep,
    RemedyLinksDep,
    SettingsDep,
    StoreDep,
    SweepStoreDep,
)
from service.schemas.problems import problem_responses
from service.schemas.remedies import RemediesPublic
from service.usecases.remedies import get_remedies, start_remedies

router = APIRouter(prefix="/v1/experiments", tags=["remedies"])


@router.post(
    "/{job_id}/remedies", status_code=202, response_model=RemediesPublic,
    operation_id="start_remedies",
    responses={
        200: {"model": RemediesPublic,
              "description": "The twins were already launched: their outcome so far."},
        **problem_responses(401, 404, 409, 422, 429, 503),
    },
)
def start_remedies_route(
    job_id: str, response: Response, settings: SettingsDep, store: StoreDep,
    sweeps: SweepStoreDep, links: RemedyLinksDep, dispatcher: DispatcherDep, caller: CallerDep,
    rerun: Annotated[bool, Query(
        description="Launch the twins again even if they ran before (the job then points at "
        "the new sweep)."
    )] = False,
) -> RemediesPublic:
    """Run each fix of the experiment's warning and critical findings as a twin experiment.

    A twin is the experiment's own spec with only the fix's edits applied (same data, seed,
    budget and diagnostics); the twins are one sweep, one variant per fix, with a comparison
    table and report of their own. Launched once per experiment: a second POST answers 200
    with the twins already launched (``?rerun=true`` launches them again). 409 while the
    experiment is not final; 422 when it did not succeed or has no fix to try. Poll the
    ``Location`` for the outcome.
    """
    launch = start_remedies(job_id, rerun=rerun, settings=settings, store=store, sweeps=sweeps,
                            links=links, dispatcher=dispatcher, caller=caller)
    if not launch.created:
        response.status_code = 200
    response.headers["Location"] = launch.outcome.links.self
    return launch.outcome


@router.get("/{job_id}/remedies", response_model=RemediesPublic, operation_id="get_remedies",
            responses=problem_responses(401, 404, 503))
def get_remedies_route(
    job_id: str, store: StoreDep, sweeps: SweepStoreDep, links: RemedyLinksDep,
    caller: CallerDep,
) -> RemediesPublic:
    """Per fix: did each finding it targets go away in the twin, the final validation loss
    (and its share of the constant predictor's) and the step-0 end-to-end gradient ratio
    before → after, ranked best first (resolved every targeted finding, then lower loss).

    While twins run, ``status`` is ``running`` and unfinished twins have null ``after``
    values. 404 when no remedies were started for the experiment.
    """
    return get_remedies(job_id, store=store, sweeps=sweeps, links=links, caller=caller)
