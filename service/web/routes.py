"""``/ui``: a small web UI for people — the runs page and the compare page (HTML, no script).

With auth on it takes the API key like every ``/v1`` route (``Authorization: Bearer``, e.g.
set by a proxy in front of it) and shows only the key's own runs. Bad filter values are
problem+json 422s naming the query parameter, as everywhere else.
"""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.concurrency import run_in_threadpool

from service.api.deps import CallerDep, RendererDep, StoreDep
from service.usecases import experiments as usecases
from service.web.pages import compare_page, runs_page
from worker.core.errors import InvalidRequest
from worker.jobs.records import STATUSES, SWEEP_ID_RE, TAG_RE, JobStatus

router = APIRouter(prefix="/ui", include_in_schema=False)

#: How many experiments one compare page takes.
MIN_COMPARE, MAX_COMPARE = 2, 8


def base_url(request: Request) -> str:
    """The service's absolute URL (with any root path): links of pages saved to disk work."""
    return str(request.base_url).rstrip("/")


def _optional(value: str | None, name: str, valid: bool) -> str | None:
    if not value:
        return None  # an empty form field: no filter
    if not valid:
        raise InvalidRequest(f"{name} {value!r} is not valid", field=name, location="query")
    return value


@router.get("", response_class=HTMLResponse)
def runs(
    request: Request,
    store: StoreDep,
    caller: CallerDep,
    status: Annotated[str | None, Query(max_length=20)] = None,
    tag: Annotated[str | None, Query(max_length=100)] = None,
    sweep: Annotated[str | None, Query(max_length=100)] = None,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> HTMLResponse:
    """Runs, newest first, filtered by status, tag and sweep."""
    chosen = cast(JobStatus | None, _optional(status, "status", status in STATUSES))
    tag = _optional(tag, "tag", bool(tag and TAG_RE.match(tag)))
    sweep = _optional(sweep, "sweep", bool(sweep and SWEEP_ID_RE.match(sweep)))
    page = usecases.list_experiments(
        store, caller, status=chosen, limit=limit, cursor=cursor or None,
        tags=[tag] if tag else (), sweep_id=sweep,
    )
    return HTMLResponse(runs_page(page.items, base=base_url(request), status=chosen,
                                  tag=tag, sweep=sweep, next_cursor=page.next_cursor))


@router.get("/compare", response_class=HTMLResponse)
async def compare(
    request: Request,
    store: StoreDep,
    caller: CallerDep,
    renderer: RendererDep,
    ids: Annotated[list[str], Query(max_length=MAX_COMPARE,
                                    description="Experiment ids: ids=a,b or ids=a&ids=b.")],
) -> HTMLResponse:
    """Two or more experiments side by side (an unknown id is a 404); the page is drawn off
    the request threads (``service/reports/render.py``), cached once every job is final."""
    wanted = list(dict.fromkeys(i.strip() for item in ids for i in item.split(",") if i.strip()))
    if not MIN_COMPARE <= len(wanted) <= MAX_COMPARE:
        raise InvalidRequest(
            f"compare takes {MIN_COMPARE} to {MAX_COMPARE} experiment ids, got {len(wanted)}",
            field="ids", location="query",
        )
    jobs = await run_in_threadpool(
        lambda: [usecases.get_experiment(store, job_id, caller) for job_id in wanted])
    base = base_url(request)
    key = ("compare", tuple(wanted), base) if all(job.is_final for job in jobs) else None
    page = await renderer.render(key, lambda: compare_page(jobs, base=base).encode())
    return HTMLResponse(page)
