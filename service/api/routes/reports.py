"""Reports and plots: HTML pages and PNG/SVG figures drawn from stored results (no torch).

The routes are coroutines: they read Redis in the request thread pool (short), then hand the
drawing to the app's ``PlotRenderer`` (``service/reports/render.py``: one drawing thread,
bounded, one drawing per key at a time, bytes of final jobs cached), so no request thread
waits on matplotlib.
"""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from service.api.deps import CallerDep, RemedyLinksDep, RendererDep, StoreDep, SweepStoreDep
from service.reports.html import experiment_report, sweep_report
from service.reports.plots import (
    EXPERIMENT_PLOTS,
    MEDIA_TYPES,
    experiment_plot,
    render,
    sweep_plot,
)
from service.schemas.problems import problem_responses
from service.usecases.remedies import linked_remedies
from service.usecases.sweeps import owned_sweep, point_states, progress_of, rows_of, varied_columns
from worker.core.errors import ResultNotReady
from worker.core.sweeps import METRICS, Row
from worker.jobs.records import JobRecord

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
async def get_experiment_report(
    job_id: str, store: StoreDep, sweeps: SweepStoreDep, links: RemedyLinksDep, caller: CallerDep,
    renderer: RendererDep, request: Request,
) -> HTMLResponse:
    """An HTML page: status, summary, gradient flow by probe, findings (with their remedies'
    before/after once they were run), and every plot."""
    def load() -> tuple[JobRecord, Any]:
        job = caller.check_owns(store.get(job_id))
        return job, linked_remedies(store, sweeps, links, job)

    job, remedies = await run_in_threadpool(load)
    # a final job's page changes only with its remedies (twins running): they are in the key
    base = str(request.base_url).rstrip("/")  # absolute links: the page works saved to disk
    key = (("report", job.id, base, digest(remedies.model_dump_json() if remedies else None))
           if job.is_final else None)
    page = await renderer.render(
        key, lambda: experiment_report(job, remedies, base=base).encode()
    )
    return HTMLResponse(page)


@router.get("/experiments/{job_id}/plots/{name}.{fmt}", response_class=Response,
            operation_id="get_experiment_plot",
            responses={**_IMAGE, **problem_responses(404, 409, 422, 503)})
async def get_experiment_plot(
    job_id: str,
    name: Annotated[ExperimentPlotName, Path(description="Which plot.")],
    fmt: FormatParam,
    store: StoreDep,
    caller: CallerDep,
    renderer: RendererDep,
) -> Response:
    """One plot of an experiment's result.

    ``gradient_flow_heatmap``: layer x step heatmap of log10 activation-gradient RMS;
    ``gains``: per-layer gain at init vs end; ``loss``: train/val curves; ``interpolation``:
    the MLI curve; ``alignment``: cosine over training. 404 when the result lacks the data
    (e.g. interpolation needs preset standard), 409 while the experiment has no result.
    """
    job = caller.check_owns(await run_in_threadpool(store.get, job_id))
    result = job.result
    if result is None:
        raise ResultNotReady(job.id, job.status)
    key = ("plot", job.id, name, fmt) if job.is_final else None  # a final result never changes
    body = await renderer.render(key, lambda: render(experiment_plot(name, result), fmt))
    return Response(body, media_type=MEDIA_TYPES[fmt])


@router.get("/sweeps/{sweep_id}/report", response_class=HTMLResponse,
            operation_id="get_sweep_report",
            responses={**_HTML, **problem_responses(404, 503)})
async def get_sweep_report(
    sweep_id: str, store: StoreDep, sweeps: SweepStoreDep, caller: CallerDep,
    renderer: RendererDep, request: Request,
) -> HTMLResponse:
    """An HTML page: progress, the comparison table, and each metric against the varied axis."""
    def load() -> tuple[Any, list[Row]]:
        record = owned_sweep(sweeps, sweep_id, caller)
        return record, rows_of(point_states(store, record))

    record, rows = await run_in_threadpool(load)
    progress = progress_of(rows)
    base = str(request.base_url).rstrip("/")  # absolute links: the page works saved to disk
    key = ("sweep-report", record.id, base, digest(repr((record.name, rows))))  # its inputs
    page = await renderer.render(key, lambda: sweep_report(
        sweep_id=record.id, name=record.name, varied=varied_columns(record), rows=rows,
        progress=progress.by_status, done=progress.done, base=base,
    ).encode())
    return HTMLResponse(page)


@router.get("/sweeps/{sweep_id}/plots/{name}.{fmt}", response_class=Response,
            operation_id="get_sweep_plot",
            responses={**_IMAGE, **problem_responses(404, 422, 503)})
async def get_sweep_plot(
    sweep_id: str,
    name: Annotated[SweepPlotName, Path(description="The metric to plot.")],
    fmt: FormatParam,
    store: StoreDep,
    sweeps: SweepStoreDep,
    caller: CallerDep,
    renderer: RendererDep,
    x: Annotated[str | None, Query(
        description="Varied column on the x axis (default: the first numeric one)."
    )] = None,
) -> Response:
    """A metric of the comparison table against one varied column, one line per family.

    E.g. ``grad_ratio_init`` against ``model.depth`` with one line per activation (log y).
    """
    def load() -> tuple[Any, list[Row]]:
        record = owned_sweep(sweeps, sweep_id, caller)
        return record, rows_of(point_states(store, record))

    record, rows = await run_in_threadpool(load)
    key = ("sweep-plot", record.id, name, fmt, x, digest(repr(rows)))
    body = await renderer.render(
        key, lambda: render(sweep_plot(name, rows, varied_columns(record), x), fmt))
    return Response(body, media_type=MEDIA_TYPES[fmt])


def digest(text: str | None) -> str:
    """A short fingerprint of what a drawing depends on (part of its cache key)."""
    return hashlib.sha256((text or "").encode()).hexdigest()[:32]
