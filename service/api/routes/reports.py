"""Reports and plots: HTML pages and PNG/SVG figures drawn from stored results (no torch)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response
from fastapi.responses import HTMLResponse

from service.api.deps import CallerDep, StoreDep, SweepStoreDep
from service.reports.html import experiment_report, sweep_report
from service.reports.plots import (
    EXPERIMENT_PLOTS,
    MEDIA_TYPES,
    experiment_plot,
    render,
    sweep_plot,
)
from service.schemas.problems import problem_responses
from service.usecases.sweeps import owned_sweep, point_states, progress_of, rows_of, varied_columns
from worker.core.errors import ResultNotReady
from worker.core.sweeps import METRICS

router = APIRouter(prefix="/v1", tags=["reports"])

_HTML: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/html": {}}, "description": "A self-contained HTML page."}
}
_IMAGE: dict[int | str, dict[str, Any]] = {
    200: {"content": {"image/png": {}, "image/svg+xml": {}}, "description": "PNG or SVG."}
}

ExperimentPlotName = Literal[
    "gradient_flow_heatmap", "gains", "loss", "interpolation", "alignment"
]
if TYPE_CHECKING:
    SweepPlotName = str
else:  # the plotted columns of worker.core.sweeps.TABLE, in plot order
    SweepPlotName = Literal[METRICS]
assert set(ExperimentPlotName.__args__) == set(EXPERIMENT_PLOTS)  # type: ignore[attr-defined]
FormatParam = Annotated[Literal["png", "svg"], Path(description="Image format.")]


@router.get("/experiments/{job_id}/report", response_class=HTMLResponse,
            operation_id="get_experiment_report",
            responses={**_HTML, **problem_responses(404, 503)})
def get_experiment_report(job_id: str, store: StoreDep, caller: CallerDep) -> HTMLResponse:
    """An HTML page: status, summary, gradient flow by probe, findings, and every plot."""
    return HTMLResponse(experiment_report(caller.check_owns(store.get(job_id))))


@router.get("/experiments/{job_id}/plots/{name}.{fmt}", response_class=Response,
            operation_id="get_experiment_plot",
            responses={**_IMAGE, **problem_responses(404, 409, 422, 503)})
def get_experiment_plot(
    job_id: str,
    name: Annotated[ExperimentPlotName, Path(description="Which plot.")],
    fmt: FormatParam,
    store: StoreDep,
    caller: CallerDep,
) -> Response:
    """One plot of an experiment's result.

    ``gradient_flow_heatmap``: layer x step heatmap of log10 activation-gradient RMS;
    ``gains``: per-layer gain at init vs end; ``loss``: train/val curves; ``interpolation``:
    the MLI curve; ``alignment``: cosine over training. 404 when the result lacks the data
    (e.g. interpolation needs preset standard), 409 while the experiment has no result.
    """
    job = caller.check_owns(store.get(job_id))
    if job.result is None:
        raise ResultNotReady(job.id, job.status)
    body = render(experiment_plot(name, job.result), fmt)
    return Response(body, media_type=MEDIA_TYPES[fmt])


@router.get("/sweeps/{sweep_id}/report", response_class=HTMLResponse,
            operation_id="get_sweep_report",
            responses={**_HTML, **problem_responses(404, 503)})
def get_sweep_report(
    sweep_id: str, store: StoreDep, sweeps: SweepStoreDep, caller: CallerDep
) -> HTMLResponse:
    """An HTML page: progress, the comparison table, and each metric against the varied axis."""
    record = owned_sweep(sweeps, sweep_id, caller)
    rows = rows_of(point_states(store, record))
    progress = progress_of(rows)
    return HTMLResponse(sweep_report(
        sweep_id=record.id, name=record.name, varied=varied_columns(record), rows=rows,
        progress=progress.by_status, done=progress.done,
    ))


@router.get("/sweeps/{sweep_id}/plots/{name}.{fmt}", response_class=Response,
            operation_id="get_sweep_plot",
            responses={**_IMAGE, **problem_responses(404, 422, 503)})
def get_sweep_plot(
    sweep_id: str,
    name: Annotated[SweepPlotName, Path(description="The metric to plot.")],
    fmt: FormatParam,
    store: StoreDep,
    sweeps: SweepStoreDep,
    caller: CallerDep,
    x: Annotated[str | None, Query(
        description="Varied column on the x axis (default: the first numeric one)."
    )] = None,
) -> Response:
    """A metric of the comparison table against one varied column, one line per family.

    E.g. ``grad_ratio_init`` against ``model.depth`` with one line per activation (log y).
    """
    record = owned_sweep(sweeps, sweep_id, caller)
    rows = rows_of(point_states(store, record))
    body = render(sweep_plot(name, rows, varied_columns(record), x), fmt)
    return Response(body, media_type=MEDIA_TYPES[fmt])
