"""The reaper on a real Redis with the real Celery dispatcher (messages land in the broker
lists; no worker consumes them): lost attempts, lost messages, quiet webhooks, pruning, and
one leader at a time."""

from __future__ import annotations

import time

import pytest

from worker.core.settings import Settings
from worker.jobs.broker import UNACKED_INDEX_KEY, UNACKED_KEY, Reservation, Reservations
from worker.jobs.dispatch import CeleryDispatcher
from worker.jobs.redis_store import RedisJobStore
from worker.jobs.registry import RedisWorkerRegistry
from worker.runtime.reaper import Reaper, ReaperThread, job_ids_in_broker, job_ids_waiting

DB = 14
SPEC = '{"spec_version":1}'


@pytest.fixture
def client(redis_server):
    client = redis_server.client(DB)
    client.flushdb()
    return client


@pytest.fixture
def settings(redis_server) -> Settings:
    return Settings(redis_url=redis_server.url(DB), max_attempts=2, queued_lost_after_s=0.2,
                    lease_renew_interval_s=0.1, lease_ttl_s=0.5)


@pytest.fixture
def store(client, settings) -> RedisJobStore:
    return RedisJobStore(client, prefix=settings.key_prefix, retention_seconds=600)


@pytest.fixture
def dispatcher(settings):
    dispatcher = CeleryDispatcher.from_settings(settings)
    yield dispatcher
    dispatcher.close()


@pytest.fixture
def reaper(store, dispatcher, settings) -> Reaper:
    return Reaper(store, dispatcher, settings)


def lose(store, client, job_id, holder="gone@h|1"):
    """Start an attempt whose process then dies (its lease is gone)."""
    store.claim(job_id, worker=holder.split("|")[0], holder=holder, lease_ttl_s=30,
                max_attempts=2)
    client.delete(store.lease_key(job_id))


def test_a_lost_attempt_is_requeued_and_sent_again(store, client, reaper):
    job = store.create(SPEC, name=None, queue="gpu")
    alive = store.create(SPEC, name=None, queue="cpu")
    store.claim(alive.id, worker="w", holder="w|1", lease_ttl_s=30, max_attempts=2)
    lose(store, client, job.id)

    report = reaper.run_once()

    assert report.requeued == [job.id] and not report.failed
    record = store.get(job.id)
    assert record.status == "queued" and record.attempts == 1
    assert "was lost" in record.error
    assert job.id in job_ids_in_broker(client, ["gpu"])
    assert store.get(alive.id).status == "running"  # a live lease is left alone


def test_after_max_attempts_the_job_fails_with_the_reason(store, client, reaper):
    job = store.create(SPEC, name=None, queue="cpu", callback_url="http://127.0.0.1/hook")
    lose(store, client, job.id, "a@h|1")
    reaper.run_once()
    lose(store, client, job.id, "b@h|2")

    report = reaper.run_once()

    assert report.failed == [job.id]
    record = store.get(job.id)
    assert record.status == "failed" and record.attempts == 2
    assert record.error.startswith("gave up after 2 attempt(s)")
    assert client.llen("webhooks") == 1  # the end is announced


def test_a_queued_job_whose_message_was_lost_is_sent_again_once(store, client, reaper,
                                                                  dispatcher):
    lost = store.create(SPEC, name=None, queue="cpu")  # recorded, never enqueued
    waiting = store.create(SPEC, name=None, queue="cpu")
    dispatcher.enqueue(waiting.id, queue="cpu")
    reserved = store.create(SPEC, name=None, queue="cpu")
    dispatcher.enqueue(reserved.id, queue="cpu")
    # a worker took this one (kombu moves it into the unacked hash)
    message = next(m for m in client.lrange("cpu", 0, -1) if reserved.id in m)
    client.lrem("cpu", 1, message)
    client.hset(UNACKED_KEY, "tag-1", f'[{message}, "", "cpu"]')
    fresh = store.create(SPEC, name=None, queue="cpu")  # not old enough yet

    time.sleep(0.3)
    store.touch_queued(fresh.id, next(ts for j, _, ts in store.queued_jobs() if j == fresh.id))
    report = reaper.run_once()

    assert report.resent == [lost.id]
    assert job_ids_in_broker(client, ["cpu"]) >= {lost.id, waiting.id, reserved.id}
    assert reaper.run_once().resent == []  # it is in the broker now


def test_quiet_webhook_deliveries_are_sent_again(store, client, reaper):
    job = store.create(SPEC, name=None, queue="cpu", callback_url="http://127.0.0.1/hook")
    store.finish(job.id, "cancelled")
    assert reaper.run_once().webhooks == []  # just finished: its delivery is on its way
    client.zadd(store.outbox_key(), {job.id: time.time() - reaper.webhook_idle_s() - 1})
    assert reaper.run_once().webhooks == [job.id]
    assert client.llen("webhooks") == 1


def test_pruning_runs_on_schedule(store, client, reaper):
    job = store.create(SPEC, name=None, queue="cpu")
    client.delete(store.job_key(job.id))
    assert reaper.run_once(prune=False).pruned == 0
    assert reaper.run_once(prune=True).pruned == 1


def test_one_reaper_leads_at_a_time(client, reaper):
    a = ReaperThread(reaper, client, "lock", "node-a", interval_s=0.5)
    b = ReaperThread(reaper, client, "lock", "node-b", interval_s=0.5)
    assert a.leads() and not b.leads()
    assert a.leads()  # the holder keeps it
    client.delete("lock")  # node-a died: its lock expires
    assert b.leads() and not a.leads()


def test_hardening_8_a_message_reserved_by_a_gone_worker_is_sent_again(store, client, reaper,
                                                                       dispatcher, settings):
    """Hardening item 8: a task reserved by a worker that died is re-sent, not left 2 h."""
    registry = RedisWorkerRegistry(client, prefix=settings.key_prefix,
                                   ttl_seconds=settings.liveness_ttl_s)
    reservations = Reservations(client, prefix=settings.key_prefix,
                                ttl_s=settings.broker_visibility_timeout_s)
    registry.beat("alive@h", ["cpu"], pid=777)

    def reserve(job_id: str, tag: str, node: str, pid: int) -> None:
        """A worker received the task (kombu moved it to unacked) and noted it."""
        dispatcher.enqueue(job_id, queue="cpu")
        message = next(m for m in client.lrange("cpu", 0, -1) if job_id in m)
        client.lrem("cpu", 1, message)
        client.hset(UNACKED_KEY, tag, f'[{message}, "", "cpu"]')
        client.zadd(UNACKED_INDEX_KEY, {tag: time.time()})
        reservations.record(tag, Reservation(node=node, pid=pid, job_id=job_id))

    orphaned = store.create(SPEC, name=None, queue="cpu")
    reserve(orphaned.id, "tag-dead", "gone@h", 4242)  # that worker is not in the registry
    held = store.create(SPEC, name=None, queue="cpu")
    reserve(held.id, "tag-live", "alive@h", 777)
    time.sleep(0.3)  # older than queued_lost_after_s

    report = reaper.run_once()

    assert report.resent == [orphaned.id]
    assert orphaned.id in job_ids_waiting(client, ["cpu"])  # back in its queue
    assert set(client.hkeys(UNACKED_KEY)) == {"tag-live"}  # the dead copy is gone
    assert set(reservations.all()) == {"tag-live"}
    assert store.get(orphaned.id).status == "queued"
    assert reaper.run_once().resent == []  # once


def test_hardening_9_live_jobs_outlive_the_retention_and_final_ones_keep_it(
        client, dispatcher, settings):
    """Hardening item 9: retention counts from the final state; queued and running records
    (and their indexes) are refreshed while they live."""
    retention = 2
    store = RedisJobStore(client, prefix=settings.key_prefix, retention_seconds=retention)
    reaper = Reaper(store, dispatcher, settings)
    waiting = store.create(SPEC, name=None, queue="cpu", owner="alice", tags=["nightly"])
    running = store.create(SPEC, name=None, queue="cpu")
    store.claim(running.id, worker="w", holder="w|1", lease_ttl_s=30, max_attempts=2)
    dispatcher.enqueue(waiting.id, queue="cpu")  # not lost: only kept alive

    for _ in range(3):  # 2.4 s: longer than the retention, with no write to the jobs
        time.sleep(0.8)
        report = reaper.run_once(keep_alive=True)

    assert store.get(waiting.id).status == "queued"
    assert store.get(running.id).status == "running"
    assert report.kept_alive == 2
    assert [j.id for j in store.list_jobs(owner="alice", tags=["nightly"]).items] == [waiting.id]
    store.finish(running.id, "succeeded", attempt=1, result={})
    reaper.run_once(keep_alive=True)  # a final job is not refreshed any more
    ttl_ms = client.pttl(store.job_key(running.id))
    assert 0 < ttl_ms <= retention * 1000  # it lives the retention from its end
    assert client.pttl(store.job_key(waiting.id)) > (retention - 0.5) * 1000
