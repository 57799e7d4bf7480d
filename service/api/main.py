"""The one place that assembles the API's routers."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.api.routes import (
    catalog,
    experiments,
    health,
    metrics,
    remedies,
    reports,
    specs,
    sweeps,
)
from service.auth import authenticate
from service.web import routes as web

# With auth on, every /v1 route needs an API key (401 otherwise); routes that touch jobs also
# take the caller (CallerDep) to see only its own. Health and metrics stay open for probes.
V1_AUTH = [Depends(authenticate)]

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(metrics.router)
api_router.include_router(experiments.router, dependencies=V1_AUTH)
api_router.include_router(specs.router, dependencies=V1_AUTH)
api_router.include_router(catalog.router, dependencies=V1_AUTH)
api_router.include_router(sweeps.router, dependencies=V1_AUTH)
api_router.include_router(reports.router, dependencies=V1_AUTH)
api_router.include_router(remedies.router, dependencies=V1_AUTH)
api_router.include_router(web.router, dependencies=V1_AUTH)  # /ui: pages for people
