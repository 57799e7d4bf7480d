"""``JobIntake`` on Redis: a submission written on the event loop, with ``redis.asyncio``.

The API's ``POST /v1/experiments`` records the job and pushes its run task in one run of
``lua/create.lua`` (``worker/jobs/redis_create.py`` prepares it, as for the sync store),
awaited here instead of in a thread: the route takes no thread-pool hop (bench/bench_api.py).
Calls go through the API's circuit breaker, as its sync pool's do (``redis_conn.guarded``): a
hung Redis costs one timeout, then a fast 503.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import cast

import redis.asyncio

from worker.core.errors import JobNotFound
from worker.core.settings import Settings
from worker.jobs import codec
from worker.jobs.records import JobRecord
from worker.jobs.redis_conn import CircuitBreaker, connect_async, guarded, translate_redis_errors
from worker.jobs.redis_create import create_call
from worker.jobs.redis_layout import JobKeys, job_script


def intake_from_settings(settings: Settings, *, socket_timeout_s: float | None = None,
                         breaker: CircuitBreaker | None = None) -> RedisJobIntake:
    """The intake for ``settings`` (its own pool, no retries: the breaker decides); create it
    on the event loop that will use it."""
    client = connect_async(settings, socket_timeout_s=socket_timeout_s, retries=0)
    return RedisJobIntake(client, prefix=settings.key_prefix,
                          retention_seconds=settings.retention_seconds, breaker=breaker)


class RedisJobIntake(JobKeys):
    """``JobIntake`` over an asyncio Redis client (the job store's layout and retention)."""

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str, retention_seconds: int,
                 breaker: CircuitBreaker | None = None) -> None:
        super().__init__(prefix)
        self._client = client
        self._ttl = retention_seconds
        self._breaker = breaker
        self._script = client.register_script(job_script("create"))

    async def submit(
        self, spec_json: str, *, name: str | None, queue: str, owner: str | None = None,
        callback_url: str | None = None, max_active: int | None = None,
        tags: Sequence[str] = (), idempotency: tuple[str, str, int] | None = None,
    ) -> tuple[JobRecord, bool]:
        call = create_call(
            self, self._ttl, spec_json, name=name, queue=queue, owner=owner,
            callback_url=callback_url, max_active=max_active, tags=tags,
            idempotency=idempotency, enqueue=True,
        )
        with translate_redis_errors():
            reply = cast(list[str], await guarded(
                self._breaker, lambda: self._script(keys=call.keys, args=call.args)))
            made = call.outcome(reply)
            if not isinstance(made, str):
                return made, True
            raw = cast(dict[str, str], await guarded(
                self._breaker, lambda: self._client.hgetall(self.job_key(made))))
        if not raw:  # the replayed job was deleted in between
            raise JobNotFound(made)
        return codec.job_record(raw), False

    async def close(self) -> None:
        await self._client.aclose()

