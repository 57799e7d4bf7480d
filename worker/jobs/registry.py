"""Which Celery workers are alive: heartbeats in Redis (torch-free; readiness reads it).

Layout (``{p}`` = key prefix)::

    {p}:workers            zset    hostname -> last heartbeat (unix seconds)
    {p}:worker:{hostname}  string  JSON {"hostname", "queues", "pid"}

Both carry a TTL of ``liveness_ttl_s`` refreshed by every beat, so a worker that
stops beating disappears on its own; stale zset members are trimmed on read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import redis

from worker.core.settings import Settings
from worker.jobs.redis_conn import connect, translate_redis_errors


@dataclass(frozen=True)
class WorkerInfo:
    hostname: str
    queues: list[str]
    pid: int
    last_seen: float


class WorkerRegistry(Protocol):
    def beat(self, hostname: str, queues: Sequence[str], pid: int) -> None:
        """Record that ``hostname`` is alive and consumes ``queues``."""

    def leave(self, hostname: str) -> None:
        """Forget ``hostname`` (clean shutdown)."""

    def live_workers(self) -> list[WorkerInfo]:
        """Workers whose last heartbeat is younger than the TTL."""


class RedisWorkerRegistry:
    def __init__(self, client: redis.Redis, *, prefix: str, ttl_seconds: int) -> None:
        self._r = client
        self._zset = f"{prefix}:workers"
        self._prefix = prefix
        self._ttl = ttl_seconds

    def _key(self, hostname: str) -> str:
        return f"{self._prefix}:worker:{hostname}"

    def beat(self, hostname: str, queues: Sequence[str], pid: int) -> None:
        info = {"hostname": hostname, "queues": list(queues), "pid": pid}
        with translate_redis_errors():
            pipe = self._r.pipeline(transaction=True)
            pipe.set(self._key(hostname), json.dumps(info), ex=self._ttl)
            pipe.zadd(self._zset, {hostname: time.time()})
            pipe.expire(self._zset, self._ttl)
            pipe.execute()

    def leave(self, hostname: str) -> None:
        with translate_redis_errors():
            pipe = self._r.pipeline(transaction=True)
            pipe.delete(self._key(hostname))
            pipe.zrem(self._zset, hostname)
            pipe.execute()

    def live_workers(self) -> list[WorkerInfo]:
        cutoff = time.time() - self._ttl
        with translate_redis_errors():
            pipe = self._r.pipeline(transaction=True)
            pipe.zremrangebyscore(self._zset, "-inf", f"({cutoff}")
            pipe.zrange(self._zset, 0, -1, withscores=True)
            rows = cast(list[tuple[str, float]], pipe.execute()[1])
            keys = [self._key(hostname) for hostname, _ in rows]
            infos = cast(list[str | None], self._r.mget(keys)) if keys else []
        workers = []
        for (hostname, last_seen), raw in zip(rows, infos, strict=True):
            if raw is None:
                continue
            info = json.loads(raw)
            workers.append(WorkerInfo(hostname=hostname, queues=list(info["queues"]),
                                      pid=int(info["pid"]), last_seen=last_seen))
        return workers


def registry_from_settings(settings: Settings) -> RedisWorkerRegistry:
    return RedisWorkerRegistry(
        connect(settings), prefix=settings.key_prefix, ttl_seconds=settings.liveness_ttl_s
    )
