"""The FastAPI application: ``create_app()`` wires settings, job store, dispatcher, routes.

Never imports torch (a test checks ``sys.modules``): compute lives behind the task queue.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from service.api.errors import install_error_handlers
from service.api.main import api_router
from service.api.middleware import BodySizeLimit
from service.api.openapi import problem_openapi
from service.api.openapi_docs import client_ready, operation_id
from service.live.metrics import RequestMetrics, make_registry
from service.settings import ServiceSettings, get_service_settings
from worker.core.logs import configure_logging
from worker.jobs.broker import RedisBrokerQueues
from worker.jobs.dispatch import CeleryDispatcher
from worker.jobs.redis_feed import feed_from_settings
from worker.jobs.redis_store import store_from_settings
from worker.jobs.registry import registry_from_settings
from worker.jobs.sweep_store import sweep_store_from_settings


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """An API instance for ``settings`` (default: the process settings from the env)."""
    settings = settings or get_service_settings()
    store = store_from_settings(settings)
    dispatcher = CeleryDispatcher.from_settings(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_format)  # served: key=value or JSON lines on stderr
        # The live feed (server-sent events) is async: it belongs to the serving event loop.
        app.state.job_feed = feed_from_settings(settings)
        yield
        await app.state.job_feed.close()
        dispatcher.close()

    app = FastAPI(
        title="trainability",
        version="0.1.0",
        summary="Measure how easy a neural-network design is to optimize.",
        lifespan=lifespan,
        generate_unique_id_function=operation_id,  # stable ids: the route function's name
    )
    app.state.settings = settings
    app.state.store = store
    app.state.sweeps = sweep_store_from_settings(settings)
    app.state.registry = registry_from_settings(settings)
    app.state.dispatcher = dispatcher
    # The broker's lists live in the same Redis: share the store's connection pool.
    app.state.metrics_registry, request_histogram = make_registry(
        store, app.state.registry, RedisBrokerQueues(store.client)
    )
    install_error_handlers(app)
    app.include_router(api_router)
    # an oversized body is a 413 before the application reads it (service/api/middleware.py)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes,
                       problem_type_base=settings.problem_type_base)
    # outermost: latency and an access line (with the job id) for every answer, 413s included
    app.add_middleware(RequestMetrics, histogram=request_histogram)
    app.openapi = client_ready(problem_openapi(app))  # type: ignore[method-assign]
    return app


app = create_app()
