"""What the Celery broker holds, read from its Redis (kombu's Redis transport layout).

kombu keeps each queue as a Redis list named after the queue (tasks waiting) and every message
delivered to a worker but not yet acknowledged in one hash, ``unacked`` (with ``acks_late``: a
job is acknowledged when it ends), with the time of each delivery in ``unacked_index``. The
reaper looks for lost job ids in both; ``/metrics`` reports their sizes. Reading them needs
only Redis: no Celery app, no worker signal.

kombu does not say *which* worker holds an unacknowledged message, and gives it back only
after the visibility timeout (2 h): a worker that reserved a job and died before claiming it
would leave the job ``queued`` that long. So each worker notes what it reserves
(``Reservations``, written from Celery's ``task_received`` in the worker's main process)::

    {p}:reserved   hash   delivery tag -> "node|pid|job_id" of the worker process that
                          received it (TTL: the visibility timeout, refreshed per write)

and the reaper takes a message reserved by a process that is no longer in the worker
registry as lost (``worker/runtime/reaper.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, Protocol, cast

import redis

from worker.jobs.redis_conn import translate_redis_errors

#: kombu's Redis transport: messages reserved by workers, not yet acknowledged.
UNACKED_KEY: Final = "unacked"
#: kombu's Redis transport: delivery tag -> when it was delivered (unix seconds).
UNACKED_INDEX_KEY: Final = "unacked_index"


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


@dataclass(frozen=True)
class Reservation:
    """Who received a message: the worker's node name and main-process id, and the job."""

    node: str
    pid: int
    job_id: str

    def encode(self) -> str:
        return f"{self.node}|{self.pid}|{self.job_id}"

    @classmethod
    def parse(cls, raw: str) -> Reservation | None:
        node, _, rest = raw.rpartition("|")
        node, _, pid = node.rpartition("|")
        if not node or not pid.isdigit():
            return None
        return cls(node=node, pid=int(pid), job_id=rest)


class Reservations:
    """The ``{p}:reserved`` hash: which worker process received each unacknowledged message."""

    def __init__(self, client: redis.Redis, *, prefix: str, ttl_s: int) -> None:
        self._r = client
        self._key = f"{prefix}:reserved"
        self._ttl = ttl_s

    def record(self, delivery_tag: str, reservation: Reservation) -> None:
        with translate_redis_errors():
            pipe = self._r.pipeline(transaction=False)
            pipe.hset(self._key, delivery_tag, reservation.encode())
            pipe.expire(self._key, self._ttl)
            pipe.execute()

    def all(self) -> dict[str, Reservation]:
        with translate_redis_errors():
            raw = cast(dict[str, str], self._r.hgetall(self._key))
        found = {tag: Reservation.parse(value) for tag, value in raw.items()}
        return {tag: r for tag, r in found.items() if r is not None}

    def forget(self, delivery_tags: Sequence[str]) -> None:
        if delivery_tags:
            with translate_redis_errors():
                self._r.hdel(self._key, *delivery_tags)


def unacked_deliveries(client: redis.Redis) -> dict[str, float]:
    """Delivery tag -> when it was delivered, of every unacknowledged message."""
    with translate_redis_errors():
        rows = cast(list[tuple[str, float]],
                    client.zrange(UNACKED_INDEX_KEY, 0, -1, withscores=True))
    return dict(rows)


def drop_unacked(client: redis.Redis, delivery_tags: Sequence[str]) -> None:
    """Remove messages from kombu's unacked set (their task was sent again): the dead
    worker's copy is not handed out again after the visibility timeout."""
    if delivery_tags:
        with translate_redis_errors():
            pipe = client.pipeline(transaction=True)
            pipe.hdel(UNACKED_KEY, *delivery_tags)
            pipe.zrem(UNACKED_INDEX_KEY, *delivery_tags)
            pipe.execute()

