"""``JobFeed`` on Redis: the job store's writes as pub/sub wake-ups, read with ``redis.asyncio``.

Every write of a job by the store's Lua scripts publishes a word on the job's events channel
(``worker/jobs/redis_layout.py``); a ``RedisJobWatch`` waits on that channel without holding
a thread, and ``live_state`` reads the job's few small fields with one ``HMGET``.
"""

from __future__ import annotations

import json
from typing import Any, cast

import redis.asyncio
from redis.asyncio.client import PubSub

from worker.core.settings import Settings
from worker.jobs import codec
from worker.jobs.records import LiveState
from worker.jobs.redis_conn import connect_async, translate_redis_errors
from worker.jobs.redis_layout import JobKeys


def feed_from_settings(settings: Settings) -> RedisJobFeed:
    """The feed for ``settings``; create it on the event loop that will use it."""
    return RedisJobFeed(connect_async(settings), prefix=settings.key_prefix)


class RedisJobWatch:
    """A subscription to one job's events channel."""

    def __init__(self, pubsub: PubSub) -> None:
        self._pubsub: PubSub | None = pubsub

    async def wait(self, timeout_s: float) -> bool:
        if self._pubsub is None:
            raise RuntimeError("the watch is closed")
        with translate_redis_errors():
            message = await self._pubsub.get_message(ignore_subscribe_messages=True,
                                                     timeout=timeout_s)
        return message is not None

    async def close(self) -> None:
        if self._pubsub is not None:
            pubsub, self._pubsub = self._pubsub, None
            await pubsub.aclose()  # type: ignore[no-untyped-call]


class RedisJobFeed(JobKeys):
    """``JobFeed`` over an asyncio Redis client (one pool, on the serving event loop)."""

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str) -> None:
        super().__init__(prefix)
        self._client = client

    async def watch(self, job_id: str) -> RedisJobWatch:
        pubsub = self._client.pubsub()
        try:
            with translate_redis_errors():
                await pubsub.subscribe(self.events_channel(job_id))
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        return RedisJobWatch(pubsub)

    async def live_state(self, job_id: str) -> LiveState | None:
        with translate_redis_errors():
            values = cast(list[str | None],
                          await self._client.hmget(self.job_key(job_id), codec.LIVE_FIELDS))
        return codec.live_state(dict(zip(codec.LIVE_FIELDS, values, strict=True)))

    async def result(self, job_id: str) -> dict[str, Any] | None:
        with translate_redis_errors():
            raw = await self._client.hget(self.job_key(job_id), "result")
        return cast(dict[str, Any] | None, json.loads(raw) if raw else None)

    async def close(self) -> None:
        await self._client.aclose()
