"""Typed dependencies for routes: ``Annotated`` aliases over what ``create_app`` wired up."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from service.auth import Caller, authenticate, is_operator
from service.live.events import StreamLimits
from service.reports.render import PlotRenderer
from service.settings import ServiceSettings
from worker.jobs.dispatch import JobDispatcher
from worker.jobs.registry import WorkerRegistry
from worker.jobs.remedy_links import RemedyLinks
from worker.jobs.store import JobFeed, JobStore
from worker.jobs.sweep_store import SweepStore


def get_renderer(request: Request) -> PlotRenderer:
    """Where plots and report pages are drawn (off the request threads)."""
    return cast(PlotRenderer, request.app.state.plot_renderer)


def get_stream_limits(request: Request) -> StreamLimits:
    """Open event streams per caller in this process (``service/live/events.py``)."""
    return cast(StreamLimits, request.app.state.stream_limits)


def get_settings(request: Request) -> ServiceSettings:
    return cast(ServiceSettings, request.app.state.settings)


def get_store(request: Request) -> JobStore:
    return cast(JobStore, request.app.state.store)


def get_job_feed(request: Request) -> JobFeed:
    """The live view of the job store (opened by the app's lifespan, on its event loop)."""
    return cast(JobFeed, request.app.state.job_feed)


def get_dispatcher(request: Request) -> JobDispatcher:
    return cast(JobDispatcher, request.app.state.dispatcher)


def get_sweep_store(request: Request) -> SweepStore:
    return cast(SweepStore, request.app.state.sweeps)


def get_remedy_links(request: Request) -> RemedyLinks:
    return cast(RemedyLinks, request.app.state.remedy_links)


def get_registry(request: Request) -> WorkerRegistry:
    return cast(WorkerRegistry, request.app.state.registry)


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
JobFeedDep = Annotated[JobFeed, Depends(get_job_feed)]
DispatcherDep = Annotated[JobDispatcher, Depends(get_dispatcher)]
RegistryDep = Annotated[WorkerRegistry, Depends(get_registry)]
SweepStoreDep = Annotated[SweepStore, Depends(get_sweep_store)]
RemedyLinksDep = Annotated[RemedyLinks, Depends(get_remedy_links)]
CallerDep = Annotated[Caller, Depends(authenticate)]
OperatorDep = Annotated[bool, Depends(is_operator)]  # an operator key: details on probes
RendererDep = Annotated[PlotRenderer, Depends(get_renderer)]
StreamLimitsDep = Annotated[StreamLimits, Depends(get_stream_limits)]
