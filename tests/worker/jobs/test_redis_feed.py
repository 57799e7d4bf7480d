"""RedisJobFeed (the live view behind server-sent events) against a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from worker.jobs.records import new_job_id
from worker.jobs.redis_feed import RedisJobFeed
from worker.jobs.redis_store import RedisJobStore

DB = 6
SPEC = '{"spec_version":1}'


@pytest.fixture
def store(redis_server) -> RedisJobStore:
    client = redis_server.client(DB)
    client.flushdb()
    return RedisJobStore(client, prefix="f", retention_seconds=600)


def run(redis_server, body):
    """Run ``body(feed)`` on a fresh event loop with a feed of its own."""
    async def main():
        client = redis.asyncio.Redis(port=redis_server.port, db=DB, decode_responses=True)
        feed = RedisJobFeed(client, prefix="f")
        try:
            return await body(feed)
        finally:
            await feed.close()
    return asyncio.run(main())


def test_a_write_wakes_the_watch_and_the_state_follows(redis_server, store):
    job = store.create(SPEC, name=None, queue="cpu", owner="alice")

    async def body(feed):
        watch = await feed.watch(job.id)
        try:
            first = await feed.live_state(job.id)
            assert not await watch.wait(0.05)  # nothing written yet
            await asyncio.to_thread(store.request_cancel, job.id)
            assert await watch.wait(2)
            return first, await feed.live_state(job.id), await feed.result(job.id)
        finally:
            await watch.close()
            await watch.close()  # idempotent

    first, now, result = run(redis_server, body)
    assert (first.status, first.owner, first.progress) == ("queued", "alice", None)
    assert now.status == "cancelled" and now.is_final and now.cancel_requested
    assert now.finished_at is not None and now.error == "cancelled before it started"
    assert result is None


def test_a_missing_job_has_no_state(redis_server, store):
    async def body(feed):
        return await feed.live_state(new_job_id())

    assert run(redis_server, body) is None
