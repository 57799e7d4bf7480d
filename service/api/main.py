"""The one place that assembles the API's routers."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.routes import catalog, experiments, health, reports, specs, sweeps

api_router = APIRouter()
api_router.include_router(health.router)
api_router.include_router(experiments.router)
api_router.include_router(specs.router)
api_router.include_router(catalog.router)
api_router.include_router(sweeps.router)
api_router.include_router(reports.router)
