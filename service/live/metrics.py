"""Prometheus metrics of the API process (``GET /metrics``).

Two kinds:

- **Per request**, measured here: ``trainability_http_request_duration_seconds`` (histogram
  by method, route template and status class; the time to the response's first byte, so a
  long event stream counts its latency, not its length), by an ASGI middleware that also logs
  one access line per request carrying the job id of ``/v1/experiments/{job_id}`` routes
  (and of the job a submission created: the route's ``request.state.job_id``).
- **Of the whole service**, read from Redis at scrape time, so every API replica reports the
  same numbers: experiments by status (the status indexes), tasks waiting per broker queue
  (the list lengths) and reserved by workers (kombu's ``unacked``), live workers, and
  ``trainability_job_duration_seconds`` (histogram by final status, counted by the job store's
  Lua scripts when a job ends). If Redis is down the scrape still answers, with
  ``trainability_store_up 0`` and only the per-request metrics.

Each app has its own registry (several apps in one test process do not collide).

Who sees what: everything above needs an operator key (``"operator": true`` in
``TRAINABILITY_API_KEYS``, sent as ``Authorization: Bearer``; point Prometheus'
``authorization.credentials`` at it). Anyone else gets the summary: ``trainability_store_up``
and ``trainability_workers``, no counts across API keys and no traffic per route.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import TypeVar

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from worker.core.errors import TrainabilityError
from worker.core.logs import job_context
from worker.core.settings import QUEUES, WEBHOOK_QUEUE
from worker.jobs.broker import BrokerQueues
from worker.jobs.records import DURATION_BUCKETS, bucket_label
from worker.jobs.registry import WorkerRegistry
from worker.jobs.store import JobStore

log = logging.getLogger(__name__)
access_log = logging.getLogger("trainability.access")

REQUEST_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
T = TypeVar("T")


def _read(read: Callable[[], T]) -> T | None:
    """What ``read`` returns, or None (logged) when Redis did not answer this scrape."""
    try:
        return read()
    except TrainabilityError as exc:
        log.warning("metrics: store not read: %s", exc)
        return None


def _store_up(answered: bool) -> GaugeMetricFamily:
    up = GaugeMetricFamily("trainability_store_up", "1 if Redis answered this scrape.")
    up.add_metric([], 1 if answered else 0)
    return up


def _workers(count: int) -> GaugeMetricFamily:
    return GaugeMetricFamily("trainability_workers", "Workers with a recent heartbeat.",
                             value=count)


class StoreCollector(Collector):
    """Service-wide gauges and the job duration histogram, read from Redis per scrape."""

    def __init__(self, store: JobStore, registry: WorkerRegistry, broker: BrokerQueues) -> None:
        self._store = store
        self._workers = registry
        self._broker = broker

    def collect(self) -> Iterator[Metric]:
        read = _read(lambda: (
            self._store.snapshot(), self._broker.counts((*QUEUES, WEBHOOK_QUEUE)),
            len(self._workers.live_workers()),
        ))
        yield _store_up(read is not None)
        if read is None:
            return
        snapshot, broker, workers = read

        jobs = GaugeMetricFamily("trainability_jobs", "Experiments by status (all retained).",
                                 labels=["status"])
        for status, count in snapshot.jobs.items():
            jobs.add_metric([status], count)
        yield jobs

        depth = GaugeMetricFamily("trainability_queue_depth",
                                  "Tasks waiting in each broker queue.", labels=["queue"])
        for queue, n in broker.waiting.items():
            depth.add_metric([queue], n)
        yield depth
        yield GaugeMetricFamily("trainability_tasks_reserved",
                                "Tasks delivered to workers and not yet acknowledged.",
                                value=broker.reserved)
        yield _workers(workers)

        histogram = HistogramMetricFamily(
            "trainability_job_duration_seconds",
            "Time from the start of the last attempt to the final status, by final status.",
            labels=["status"],
        )
        finished = CounterMetricFamily("trainability_jobs_finished",
                                       "Experiments that reached a final status after running.",
                                       labels=["status"])
        for status, buckets in sorted(snapshot.durations.items()):
            total = buckets.get("+Inf", 0.0)
            # le labels as prometheus_client writes them ("1.0", "7200.0")
            points = [(str(float(b)), buckets.get(bucket_label(b), 0.0)) for b in DURATION_BUCKETS]
            histogram.add_metric([status], [*points, ("+Inf", total)],
                                 sum_value=buckets.get("sum", 0.0))
            finished.add_metric([status], total)
        yield histogram
        yield finished


class RequestMetrics:
    """Pure ASGI middleware: latency histogram per route, and one access log line."""

    def __init__(self, app: ASGIApp, *, histogram: Histogram) -> None:
        self.app = app
        self.histogram = histogram

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        elapsed: float | None = None

        async def timed_send(message: Message) -> None:
            nonlocal status, elapsed
            if message["type"] == "http.response.start":
                status = int(message["status"])
                elapsed = time.perf_counter() - started
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            if elapsed is None:
                elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            self.histogram.labels(scope["method"], template, f"{status // 100}xx").observe(
                elapsed
            )
            # the job the path names, or the one the request created (``scope["state"]``)
            job_id = ((scope.get("path_params") or {}).get("job_id")
                      or (scope.get("state") or {}).get("job_id"))
            with job_context(job_id):
                access_log.info(
                    "%s %s %d %.1f ms", scope["method"], scope["path"], status, elapsed * 1000,
                    extra={"route": template, "status": status,
                           "duration_ms": round(elapsed * 1000, 2)},
                )


class SummaryCollector(Collector):
    """What anyone may see: whether Redis answers and how many workers are alive."""

    def __init__(self, store: JobStore, registry: WorkerRegistry) -> None:
        self._store = store
        self._workers = registry

    def collect(self) -> Iterator[Metric]:
        workers = _read(lambda: len(self._workers.live_workers()))
        yield _store_up(workers is not None)
        if workers is not None:
            yield _workers(workers)


def make_registry(
    store: JobStore, workers: WorkerRegistry, broker: BrokerQueues
) -> tuple[CollectorRegistry, Histogram]:
    """The app's registry with the store collector, and the request histogram in it."""
    registry = CollectorRegistry()
    registry.register(StoreCollector(store, workers, broker))
    histogram = Histogram(
        "trainability_http_request_duration_seconds",
        "API latency (to the first byte of the response) by route template.",
        labelnames=["method", "route", "status"], buckets=REQUEST_BUCKETS, registry=registry,
    )
    return registry, histogram


def make_summary_registry(store: JobStore, workers: WorkerRegistry) -> CollectorRegistry:
    """The registry of the summary (callers without an operator key)."""
    registry = CollectorRegistry()
    registry.register(SummaryCollector(store, workers))
    return registry
