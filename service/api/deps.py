"""Typed dependencies for routes: ``Annotated`` aliases over what ``create_app`` wired up."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from service.auth import Caller, authenticate, is_operator
from service.live.events import StreamLimits
from service.reports.render import PlotRenderer
from service.settings import ServiceSettings
from worker.jobs.dispatch import JobDispatcher
from worker.jobs.registry import WorkerRegistry
from worker.jobs.remedy_links import RemedyLinks
from worker.jobs.store import JobFeed, JobIntake, JobStore
from worker.jobs.sweep_store import SweepStore


def _app_state(name: str, doc: str) -> Callable[[Request], Awaitable[Any]]:
    """A dependency returning ``request.app.state.<name>`` (set by ``create_app``); each
    getter below declares what it returns.

    ``async`` because it does no I/O: FastAPI runs a plain ``def`` dependency in the thread
    pool, a thread hop per dependency per request (measured: a third of a GET's CPU)."""

    async def dependency(request: Request) -> Any:
        return getattr(request.app.state, name)

    dependency.__name__ = dependency.__qualname__ = f"get_{name}"
    dependency.__doc__ = doc
    return dependency


get_renderer: Callable[[Request], Awaitable[PlotRenderer]] = _app_state(
    "plot_renderer", "Where plots and report pages are drawn (off the request threads).")
get_stream_limits: Callable[[Request], Awaitable[StreamLimits]] = _app_state(
    "stream_limits", "Open event streams per caller in this process (``service/live/events.py``).")
get_settings: Callable[[Request], Awaitable[ServiceSettings]] = _app_state(
    "settings", "The service's settings.")
get_store: Callable[[Request], Awaitable[JobStore]] = _app_state("store", "The job store.")
get_job_feed: Callable[[Request], Awaitable[JobFeed]] = _app_state(
    "job_feed", "The live view of the job store (opened by the app's lifespan, on its event loop).")
get_intake: Callable[[Request], Awaitable[JobIntake]] = _app_state(
    "job_intake", "Submissions: a job and its task in one write (opened by the lifespan).")
get_dispatcher: Callable[[Request], Awaitable[JobDispatcher]] = _app_state(
    "dispatcher", "Sends tasks to the workers.")
get_sweep_store: Callable[[Request], Awaitable[SweepStore]] = _app_state(
    "sweeps", "The sweep store.")
get_remedy_links: Callable[[Request], Awaitable[RemedyLinks]] = _app_state(
    "remedy_links", "Jobs' links to their remedy sweeps.")
get_registry: Callable[[Request], Awaitable[WorkerRegistry]] = _app_state(
    "registry", "The live workers.")

SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
JobFeedDep = Annotated[JobFeed, Depends(get_job_feed)]
IntakeDep = Annotated[JobIntake, Depends(get_intake)]
DispatcherDep = Annotated[JobDispatcher, Depends(get_dispatcher)]
RegistryDep = Annotated[WorkerRegistry, Depends(get_registry)]
SweepStoreDep = Annotated[SweepStore, Depends(get_sweep_store)]
RemedyLinksDep = Annotated[RemedyLinks, Depends(get_remedy_links)]
CallerDep = Annotated[Caller, Depends(authenticate)]
OperatorDep = Annotated[bool, Depends(is_operator)]  # an operator key: details on probes
RendererDep = Annotated[PlotRenderer, Depends(get_renderer)]
StreamLimitsDep = Annotated[StreamLimits, Depends(get_stream_limits)]
