"""``/metrics``: Prometheus text format (see ``service/live/metrics.py`` for what is measured)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from service.api.deps import OperatorDep

router = APIRouter(tags=["health"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {"schema": {"type": "string"}}},
                             "description": "Prometheus text exposition format."}})
def metrics(request: Request, operator: OperatorDep) -> Response:
    """With an operator key: experiments by status, queue depths, workers, job durations, API
    latency per route. Without: only ``trainability_store_up`` and ``trainability_workers``.

    Answers even when Redis is down (``trainability_store_up 0``), so monitoring sees why.
    """
    registry: CollectorRegistry = (request.app.state.metrics_registry if operator
                                   else request.app.state.summary_metrics_registry)
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
