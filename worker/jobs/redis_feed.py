"""``JobFeed`` on Redis: the job store's writes as pub/sub wake-ups, read with ``redis.asyncio``.

Every write of a job by the store's Lua scripts publishes a word on the job's events channel
(``worker/jobs/redis_layout.py``). A feed holds **one** pub/sub connection for the whole API
process, subscribed to the pattern of every job's channel, and one reader task that wakes the
watches of the job a message names: a thousand open event streams cost one Redis connection,
not a thousand (each stream borrows a pooled connection only for its short reads). A
``RedisJobWatch`` waits on an ``asyncio.Event``, holding no thread; ``live_state`` reads the
job's few small fields with one ``HMGET``.

If the shared subscription breaks (Redis restarted, a partition), every watch's next ``wait``
raises ``StoreUnavailable`` (its stream ends with an error event; the client reconnects), and
the next ``watch`` subscribes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Any, cast

import redis.asyncio
import redis.exceptions
from redis.asyncio.client import PubSub

from worker.core.errors import JobNotFound, StoreUnavailable
from worker.core.settings import Settings
from worker.jobs import codec
from worker.jobs.records import JOB_ID_RE, JobRecord, LiveState
from worker.jobs.redis_conn import (
    CircuitBreaker,
    connect_async,
    guarded,
    translate_redis_errors,
)
from worker.jobs.redis_layout import JobKeys

log = logging.getLogger(__name__)

#: How long the reader waits for a message before it checks its connection again.
_READ_TIMEOUT_S = 1.0


def feed_from_settings(settings: Settings, *, socket_timeout_s: float | None = None,
                       breaker: CircuitBreaker | None = None) -> RedisJobFeed:
    """The feed for ``settings``; create it on the event loop that will use it. ``breaker``:
    the API's, shared with its sync pool, for the reads of ``job`` (a request's read)."""
    client = connect_async(settings, socket_timeout_s=socket_timeout_s)
    reads = (None if breaker is None else
             connect_async(settings, socket_timeout_s=socket_timeout_s, retries=0))
    return RedisJobFeed(client, prefix=settings.key_prefix, reads=reads, breaker=breaker)


class RedisJobWatch:
    """The wake-ups of one job, from the feed's shared subscription."""

    def __init__(self, feed: RedisJobFeed, job_id: str) -> None:
        self._feed: RedisJobFeed | None = feed
        self._job_id = job_id
        self.event = asyncio.Event()

    async def wait(self, timeout_s: float) -> bool:
        feed = self._feed
        if feed is None:
            raise RuntimeError("the watch is closed")
        feed.check()
        try:
            await asyncio.wait_for(self.event.wait(), timeout=max(timeout_s, 0.0))
        except TimeoutError:
            feed.check()
            return False
        self.event.clear()
        feed.check()
        return True

    async def close(self) -> None:
        if self._feed is not None:
            feed, self._feed = self._feed, None
            feed.forget(self._job_id, self)


class RedisJobFeed(JobKeys):
    """``JobFeed`` over an asyncio Redis client (one pool, on the serving event loop)."""

    def __init__(self, client: redis.asyncio.Redis, *, prefix: str,
                 reads: redis.asyncio.Redis | None = None,
                 breaker: CircuitBreaker | None = None) -> None:
        """``reads`` (default: ``client``) serves ``job`` through ``breaker``: a pool of its
        own, so that the subscription's quiet reads (a timeout that is no failure) never
        touch the breaker."""
        super().__init__(prefix)
        self._client = client
        self._reads = reads or client
        self._breaker = breaker
        self._channel_prefix = self.events_channel("")
        self._watches: dict[str, set[RedisJobWatch]] = {}
        self._pubsub: PubSub | None = None
        self._reader: asyncio.Task[None] | None = None
        self._broken: str | None = None
        self._lock = asyncio.Lock()

    @property
    def open_watches(self) -> int:
        return sum(len(group) for group in self._watches.values())

    def check(self) -> None:
        """``StoreUnavailable`` when the shared subscription broke under the watches."""
        if self._broken is not None:
            raise StoreUnavailable(f"live events interrupted: {self._broken}")

    async def _subscribe(self) -> None:
        """Make sure the shared subscription is live (subscribed and confirmed)."""
        if self._reader is not None and not self._reader.done() and self._broken is None:
            return
        async with self._lock:
            if self._reader is not None and not self._reader.done() and self._broken is None:
                return
            await self._drop_pubsub()
            pubsub = self._client.pubsub()
            try:
                with translate_redis_errors():
                    await pubsub.psubscribe(self._channel_prefix + "*")
                    # Wait for the confirmation: only then can no write be missed by a read
                    # that follows on another connection.
                    for _ in range(50):
                        message = await pubsub.get_message(timeout=0.1)
                        if message is not None and message["type"] == "psubscribe":
                            break
                    else:
                        raise StoreUnavailable("no confirmation of the events subscription")
            except BaseException:
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]
                raise
            self._pubsub, self._broken = pubsub, None
            self._reader = asyncio.create_task(self._read(pubsub), name="job-feed-reader")

    async def _read(self, pubsub: PubSub) -> None:
        """Wake the watches of each job a message names, until the connection breaks."""
        skip = len(self._channel_prefix)
        while True:
            try:
                message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                   timeout=_READ_TIMEOUT_S)
            except (redis.exceptions.RedisError, OSError) as exc:
                self._broken = f"{type(exc).__name__}: {exc}"
                log.warning("live events subscription lost: %s", self._broken)
                for group in self._watches.values():
                    for watch in group:
                        watch.event.set()
                return
            if message is None or message.get("type") != "pmessage":
                continue
            for watch in self._watches.get(str(message["channel"])[skip:], ()):
                watch.event.set()

    def forget(self, job_id: str, watch: RedisJobWatch) -> None:
        group = self._watches.get(job_id)
        if group is not None:
            group.discard(watch)
            if not group:
                del self._watches[job_id]

    async def watch(self, job_id: str) -> RedisJobWatch:
        await self._subscribe()
        watch = RedisJobWatch(self, job_id)
        self._watches.setdefault(job_id, set()).add(watch)
        return watch

    async def live_state(self, job_id: str) -> LiveState | None:
        with translate_redis_errors():
            values = cast(list[str | None],
                          await self._client.hmget(self.job_key(job_id), codec.LIVE_FIELDS))
        return codec.live_state(dict(zip(codec.LIVE_FIELDS, values, strict=True)))

    async def job(self, job_id: str) -> JobRecord:
        if not JOB_ID_RE.match(job_id):
            raise JobNotFound(job_id)
        with translate_redis_errors():
            raw = cast(dict[str, str], await guarded(
                self._breaker, lambda: self._reads.hgetall(self.job_key(job_id))))
        if not raw:
            raise JobNotFound(job_id)
        return codec.job_record(raw)

    async def result(self, job_id: str) -> dict[str, Any] | None:
        with translate_redis_errors():
            raw = await self._client.hget(self.job_key(job_id), "result")
        return cast(dict[str, Any] | None, json.loads(raw) if raw else None)

    async def _drop_pubsub(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await reader
        pubsub, self._pubsub = self._pubsub, None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]

    async def close(self) -> None:
        await self._drop_pubsub()
        if self._reads is not self._client:
            await self._reads.aclose()
        await self._client.aclose()
