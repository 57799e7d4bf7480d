"""Typed dependencies for routes: ``Annotated`` aliases over what ``create_app`` wired up."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from service.auth import Caller, authenticate
from service.settings import ServiceSettings
from worker.jobs.dispatch import JobDispatcher
from worker.jobs.registry import WorkerRegistry
from worker.jobs.store import JobFeed, JobStore
from worker.jobs.sweep_store import SweepStore


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


def get_registry(request: Request) -> WorkerRegistry:
    return cast(WorkerRegistry, request.app.state.registry)


SettingsDep = Annotated[ServiceSettings, Depends(get_settings)]
StoreDep = Annotated[JobStore, Depends(get_store)]
JobFeedDep = Annotated[JobFeed, Depends(get_job_feed)]
DispatcherDep = Annotated[JobDispatcher, Depends(get_dispatcher)]
RegistryDep = Annotated[WorkerRegistry, Depends(get_registry)]
SweepStoreDep = Annotated[SweepStore, Depends(get_sweep_store)]
CallerDep = Annotated[Caller, Depends(authenticate)]
