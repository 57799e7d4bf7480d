"""Liveness and readiness probes (for orchestrators and ``trainability run``)."""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import RegistryDep, StoreDep
from service.api.errors import NotReady
from service.schemas.health import Health, Readiness, WorkerPublic
from service.schemas.problems import problem_responses
from worker.core.errors import StoreUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
def healthz() -> Health:
    """The process is up (checks nothing else)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, responses=problem_responses(503))
def readyz(store: StoreDep, registry: RegistryDep) -> Readiness:
    """Redis answers and at least one worker has sent a heartbeat recently; else 503."""
    try:
        store.ping()
        workers = registry.live_workers()
    except StoreUnavailable as exc:
        raise NotReady("Redis is not reachable") from exc
    if not workers:
        raise NotReady("no worker is running (no recent worker heartbeat)")
    return Readiness(
        status="ready", redis="ok",
        workers=[WorkerPublic(hostname=w.hostname, queues=w.queues) for w in workers],
    )
