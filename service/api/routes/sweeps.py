"""``/v1/sweeps``: one base spec, axes over its fields, one experiment per point, one table."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Query, Response

from service.api.deps import CallerDep, DispatcherDep, SettingsDep, StoreDep, SweepStoreDep
from service.schemas.problems import problem_responses
from service.schemas.sweeps import (
    RerunRequest,
    SweepAccepted,
    SweepCancelled,
    SweepCreate,
    SweepPublic,
    SweepRerun,
    SweepsPage,
)
from service.usecases.sweeps import (
    cancel_sweep,
    create_sweep,
    owned_sweep,
    rerun_sweep,
    summary_of,
    sweep_view,
)
from worker.jobs.codec import SWEEP_CURSOR_PATTERN

router = APIRouter(prefix="/v1/sweeps", tags=["sweeps"])


@router.post("", status_code=202, response_model=SweepAccepted, operation_id="create_sweep",
             responses=problem_responses(422, 503))
def create_sweep_route(
    body: SweepCreate, response: Response, settings: SettingsDep, store: StoreDep,
    sweeps: SweepStoreDep, dispatcher: DispatcherDep, caller: CallerDep,
) -> SweepAccepted:
    """Start a sweep: one experiment per point of the axes over the base spec.

    Every point is validated like a single submission (strict spec, shapes, budgets) before
    anything is written; a 422 lists every bad point with its field path. The number of points
    is limited by the server (``max_sweep_points``). Each job carries the sweep id.
    """
    accepted = create_sweep(body, settings=settings, store=store, sweeps=sweeps,
                            dispatcher=dispatcher, caller=caller)
    response.headers["Location"] = accepted.links.self
    return accepted


@router.get("/{sweep_id}", response_model=SweepPublic, operation_id="get_sweep",
            responses=problem_responses(404, 422, 503))
def get_sweep(
    sweep_id: str,
    store: StoreDep,
    sweeps: SweepStoreDep,
    caller: CallerDep,
    sort: Annotated[str, Query(description="Column to sort the table by (see `columns`).")]
    = "point",
    order: Annotated[Literal["asc", "desc"], Query(description="Sort direction.")] = "asc",
) -> SweepPublic:
    """A sweep's progress (points by status) and its comparison table, one row per point.

    Rows hold the varied values, the job id and status, the outcome, final losses, the
    end-to-end gradient ratio at step 0 and at the end, mean alignment, the MLI largest bump
    and the number of findings by severity. Nulls sort last in either direction.
    """
    return sweep_view(store, owned_sweep(sweeps, sweep_id, caller), sort=sort, order=order)


@router.get("", response_model=SweepsPage, operation_id="list_sweeps",
            responses=problem_responses(422, 503))
def list_sweeps(
    sweeps: SweepStoreDep,
    caller: CallerDep,
    limit: Annotated[int, Query(ge=1, le=100, description="Sweeps per page.")] = 20,
    cursor: Annotated[str | None, Query(pattern=SWEEP_CURSOR_PATTERN,
                                        description="next_cursor of a page.")]
    = None,
) -> SweepsPage:
    """Sweeps, newest first, one page at a time."""
    page = sweeps.list_sweeps(limit=limit, cursor=cursor, owner=caller.name)
    return SweepsPage(data=[summary_of(r) for r in page.items], next_cursor=page.next_cursor)


@router.post("/{sweep_id}/cancel", response_model=SweepCancelled, operation_id="cancel_sweep",
             responses=problem_responses(404, 503))
def cancel_sweep_route(
    sweep_id: str, store: StoreDep, sweeps: SweepStoreDep, caller: CallerDep
) -> SweepCancelled:
    """Cancel every point whose current job has not ended (queued or running)."""
    return cancel_sweep(store, owned_sweep(sweeps, sweep_id, caller))


@router.post("/{sweep_id}/rerun", status_code=202, response_model=SweepRerun,
             operation_id="rerun_sweep", responses=problem_responses(404, 422, 503))
def rerun_sweep_route(
    sweep_id: str, settings: SettingsDep, store: StoreDep, sweeps: SweepStoreDep,
    dispatcher: DispatcherDep, caller: CallerDep,
    body: Annotated[RerunRequest | None, Body()] = None,
) -> SweepRerun:
    """Run failed or cancelled points again as new jobs; earlier jobs stay in the history."""
    statuses = list((body or RerunRequest()).statuses)
    return rerun_sweep(owned_sweep(sweeps, sweep_id, caller), statuses, settings=settings,
                       store=store, sweeps=sweeps, dispatcher=dispatcher, caller=caller)
