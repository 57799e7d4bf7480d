"""What the Celery broker holds, read from its Redis (kombu's Redis transport layout).

kombu keeps each queue as a Redis list named after the queue (tasks waiting) and every message
delivered to a worker but not yet acknowledged in one hash, ``unacked`` (with ``acks_late``: a
job is acknowledged when it ends). The reaper looks for lost job ids in both; ``/metrics``
reports their sizes. Reading them needs only Redis: no Celery app, no worker signal.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, cast

import redis

from worker.jobs.redis_conn import translate_redis_errors

#: kombu's Redis transport: messages reserved by workers, not yet acknowledged.
UNACKED_KEY: Final = "unacked"


@dataclass(frozen=True)
class BrokerCounts:
    """Tasks waiting per queue, and tasks reserved by workers (not yet acknowledged)."""

    waiting: dict[str, int]
    reserved: int


class BrokerQueues(Protocol):
    def counts(self, queues: Sequence[str]) -> BrokerCounts:
        """Sizes of ``queues`` and of the reserved set (``StoreUnavailable`` when down)."""


class RedisBrokerQueues:
    """``BrokerQueues`` over the broker's Redis (the job store's pool may be shared)."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    def counts(self, queues: Sequence[str]) -> BrokerCounts:
        with translate_redis_errors():
            pipe = self._r.pipeline(transaction=False)
            for queue in queues:
                pipe.llen(queue)
            pipe.hlen(UNACKED_KEY)
            *depths, unacked = cast(list[int], pipe.execute())
        return BrokerCounts(waiting=dict(zip(queues, depths, strict=True)), reserved=unacked)
