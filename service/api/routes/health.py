"""Liveness and readiness probes (for orchestrators and ``trainability run``).

``/healthz`` is a coroutine: it runs on the event loop, never in the thread pool that sync
routes share, so it answers even while every pool thread waits (a probe must not restart an
API that is only waiting on Redis). ``/readyz`` tells everyone whether the service can take
work and how many workers are alive; which workers and queues, only an operator key
(``service/auth.py``).
"""

from __future__ import annotations

from fastapi import APIRouter

from service.api.deps import OperatorDep, RegistryDep, StoreDep
from service.api.errors import NotReady
from service.schemas.health import Health, Readiness, WorkerPublic
from service.schemas.problems import problem_responses
from worker.core.errors import StoreUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up (checks nothing else, waits on nothing)."""
    return Health(status="ok")


@router.get("/readyz", response_model=Readiness, response_model_exclude_none=True,
            responses=problem_responses(503))
def readyz(store: StoreDep, registry: RegistryDep, operator: OperatorDep) -> Readiness:
    """Redis answers and at least one worker has sent a heartbeat recently; else 503.

    The answer counts the workers; with an operator key it also lists them and their queues.
    """
    try:
        store.ping()
        workers = registry.live_workers()
    except StoreUnavailable as exc:
        raise NotReady("Redis is not reachable") from exc
    if not workers:
        raise NotReady("no worker is running (no recent worker heartbeat)")
    details = ([WorkerPublic(hostname=w.hostname, queues=w.queues) for w in workers]
               if operator else None)
    return Readiness(status="ready", redis="ok", workers=len(workers), worker_details=details)
