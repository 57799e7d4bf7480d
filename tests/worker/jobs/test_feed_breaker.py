"""The API's async read of a job (``RedisJobFeed.job``) behind the circuit breaker it shares
with the sync pool, against a real redis-server frozen with SIGSTOP."""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.private_redis import own_redis
from worker.core.errors import StoreUnavailable
from worker.core.settings import Settings
from worker.jobs.redis_conn import CircuitBreaker
from worker.jobs.redis_feed import feed_from_settings
from worker.jobs.redis_store import RedisJobStore

TIMEOUT_S = 0.5
SPEC = '{"spec_version":1}'


async def timed_read(feed, job_id: str) -> tuple[float, str]:
    started = time.monotonic()
    try:
        await feed.job(job_id)
        outcome = "ok"
    except StoreUnavailable as exc:
        outcome = "open" if "not asked" in str(exc) else "timeout"
    return time.monotonic() - started, outcome


def test_a_frozen_redis_costs_one_timeout_then_reads_fail_fast_and_one_task_tries_again(
        tmp_path):
    with own_redis(tmp_path) as server:
        settings = Settings(redis_url=server.url())
        job = RedisJobStore(server.client(), prefix=settings.key_prefix,
                            retention_seconds=600).create(SPEC, name=None, queue="cpu")
        breaker = CircuitBreaker(open_s=1.0)

        async def main() -> dict[str, list[tuple[float, str]]]:
            feed = feed_from_settings(settings, socket_timeout_s=TIMEOUT_S, breaker=breaker)
            try:
                seen = {"before": [await timed_read(feed, job.id)]}
                server.freeze()
                try:
                    # 20 concurrent reads: each waits one timeout at most (no retries)
                    seen["wave"] = list(await asyncio.gather(
                        *(timed_read(feed, job.id) for _ in range(20))))
                    seen["open"] = [await timed_read(feed, job.id)]  # refused, not asked
                finally:
                    server.thaw()
                await asyncio.sleep(1.1)  # past the open window: half-open
                # one task is the trial; the others, at the same moment, are still refused
                seen["half_open"] = list(await asyncio.gather(
                    *(timed_read(feed, job.id) for _ in range(5))))
                seen["after"] = [await timed_read(feed, job.id)]
                return seen
            finally:
                await feed.close()

        seen = asyncio.run(main())

    assert seen["before"][0][1] == "ok"
    assert {o for _, o in seen["wave"]} == {"timeout"}
    assert max(s for s, _ in seen["wave"]) < 2 * TIMEOUT_S, seen["wave"]
    assert breaker.trips == 1
    assert seen["open"][0][1] == "open" and seen["open"][0][0] < 0.1
    assert sorted(o for _, o in seen["half_open"]) == ["ok"] + ["open"] * 4
    assert seen["after"][0][1] == "ok"


@pytest.mark.parametrize("breaker", [None, CircuitBreaker(open_s=1.0)])
def test_the_read_is_the_stores_record(redis_server, breaker):
    settings = Settings(redis_url=redis_server.url(7))
    client = redis_server.client(7)
    client.flushdb()
    store = RedisJobStore(client, prefix=settings.key_prefix, retention_seconds=600)
    job = store.create(SPEC, queue="cpu", name="n", tags=["a"])

    async def main():
        feed = feed_from_settings(settings, breaker=breaker)
        try:
            return await feed.job(job.id)
        finally:
            await feed.close()

    assert asyncio.run(main()) == store.get(job.id)
