"""The FastAPI application: ``create_app()`` wires settings, job store, dispatcher, routes.

Never imports torch (a test checks ``sys.modules``): compute lives behind the task queue.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI

from service.api.docs import install_docs
from service.api.errors import install_error_handlers
from service.api.main import api_router
from service.api.methods import AllowedMethods
from service.api.middleware import BodySizeLimit
from service.api.openapi import problem_openapi
from service.api.openapi_docs import client_ready, operation_id
from service.live.events import StreamLimits
from service.live.metrics import RequestMetrics, make_registry, make_summary_registry
from service.reports.render import PlotRenderer
from service.settings import ServiceSettings, get_service_settings
from worker.core.logs import configure_logging
from worker.jobs.broker import RedisBrokerQueues
from worker.jobs.dispatch import CeleryDispatcher
from worker.jobs.redis_conn import CircuitBreaker, connect
from worker.jobs.redis_feed import feed_from_settings
from worker.jobs.redis_intake import intake_from_settings
from worker.jobs.redis_store import RedisJobStore
from worker.jobs.registry import RedisWorkerRegistry
from worker.jobs.remedy_links import remedy_links_from_client
from worker.jobs.sweep_store import RedisSweepStore


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """An API instance for ``settings`` (default: the process settings from the env)."""
    settings = settings or get_service_settings()
    # One pool for every Redis read of a request, with a short timeout and a circuit breaker
    # (worker/jobs/redis_conn.py): a hung Redis is a fast 503, never a held request thread.
    breaker = CircuitBreaker(settings.redis_breaker_open_s)
    client = connect(settings, socket_timeout_s=settings.request_redis_timeout_s,
                     breaker=breaker)
    store = RedisJobStore(client, prefix=settings.key_prefix,
                          retention_seconds=settings.retention_seconds,
                          max_result_bytes=settings.max_result_bytes)
    dispatcher = CeleryDispatcher.from_settings(settings)

    app = FastAPI(
        title="trainability",
        version="0.1.0",
        summary="Measure how easy a neural-network design is to optimize.",
        lifespan=_lifespan(settings, breaker, dispatcher),
        docs_url=None, redoc_url=None,  # docs: install_docs, offline
        generate_unique_id_function=operation_id,  # stable ids: the route function's name
    )
    app.state.settings = settings
    app.state.store = store
    app.state.redis_breaker = breaker
    app.state.sweeps = RedisSweepStore(client, prefix=settings.key_prefix,
                                       retention_seconds=settings.retention_seconds)
    app.state.remedy_links = remedy_links_from_client(store.client, settings)  # same Redis
    app.state.registry = RedisWorkerRegistry(client, prefix=settings.key_prefix,
                                             ttl_seconds=settings.liveness_ttl_s)
    app.state.dispatcher = dispatcher
    # The broker's lists live in the same Redis: share the store's connection pool.
    app.state.metrics_registry, request_histogram = make_registry(
        store, app.state.registry, RedisBrokerQueues(store.client)
    )
    app.state.summary_metrics_registry = make_summary_registry(store, app.state.registry)
    app.state.stream_limits = StreamLimits(per_key=settings.sse_max_streams_per_key,
                                           total=settings.sse_max_streams)
    app.state.plot_renderer = PlotRenderer(max_pending=settings.plot_max_pending,
                                           cache_bytes=settings.plot_cache_bytes)
    install_error_handlers(app)
    app.include_router(api_router)
    # OPTIONS, and the Allow of a 405, list every method of the path (service/api/methods.py)
    app.add_middleware(AllowedMethods, routes=app.router.routes)
    # an oversized body is a 413 before the application reads it (service/api/middleware.py)
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_request_bytes,
                       problem_type_base=settings.problem_type_base)
    # outermost: latency and an access line (with the job id) for every answer, 413s included
    app.add_middleware(RequestMetrics, histogram=request_histogram)
    install_docs(app, client_ready(problem_openapi(app)), bearer=settings.auth_enabled)
    return app


def _lifespan(settings: ServiceSettings, breaker: CircuitBreaker, dispatcher: CeleryDispatcher,
              ) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """What runs on the serving event loop around the app's life."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_format)  # served: key=value or JSON lines on stderr
        # The live feed (server-sent events) is async: it belongs to the serving event loop.
        app.state.job_feed = feed_from_settings(
            settings, socket_timeout_s=settings.request_redis_timeout_s, breaker=breaker)
        app.state.job_intake = intake_from_settings(
            settings, socket_timeout_s=settings.request_redis_timeout_s, breaker=breaker)
        # Everything built so far (modules, the app, its routes and schemas: ~160,000
        # objects) lives as long as the process: out of the collector's sight, a full
        # collection under load takes ~13 ms instead of ~90 (measured under the POST load
        # of bench/bench_api.py: three full collections in 8 s).
        gc.freeze()
        yield
        await app.state.job_feed.close()
        await app.state.job_intake.close()
        app.state.plot_renderer.close()
        dispatcher.close()

    return lifespan


app = create_app()
