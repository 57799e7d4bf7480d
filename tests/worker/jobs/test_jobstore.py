"""RedisJobStore against a real redis-server: transitions, finality, TTLs, pages, pruning."""

from __future__ import annotations

import socket
import time

import pytest
import redis

from worker.core.errors import InvalidCursor, JobNotFound, JobStateConflict, StoreUnavailable
from worker.core.settings import Settings
from worker.jobs.records import STATUSES
from worker.jobs.redis_conn import connect
from worker.jobs.redis_store import RedisJobStore

RETENTION = 3600
SPEC = '{"spec_version":1}'
DB = 1  # JOBSTORE_DB in tests/conftest.py


@pytest.fixture
def client(redis_server) -> redis.Redis:
    client: redis.Redis = redis_server.client(DB)
    client.flushdb()
    return client


@pytest.fixture
def store(client) -> RedisJobStore:
    return RedisJobStore(client, prefix="t", retention_seconds=RETENTION)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def index_members(client, key: str) -> list[str]:
    return list(client.zrange(key, 0, -1))


def assert_every_key_has_ttl(client) -> None:
    keys = list(client.scan_iter("t:*"))
    assert keys
    for key in keys:
        ttl = client.ttl(key)
        assert 0 < ttl <= RETENTION, (key, ttl)


# --- records and transitions -----------------------------------------------------------------


def test_create_writes_a_queued_record_and_indexes(store, client):
    job = store.create(SPEC, name="n", queue="cpu")

    assert job.status == "queued" and job.attempts == 0 and not job.is_final
    assert store.get(job.id) == job
    assert index_members(client, "t:jobs") == [job.id]
    assert index_members(client, "t:jobs:queued") == [job.id]
    assert_every_key_has_ttl(client)


def test_lifecycle_moves_the_job_between_status_indexes(store, client):
    job = store.create(SPEC, name=None, queue="cpu")

    running = store.start(job.id, worker="w1@host")
    assert (running.status, running.attempts, running.worker) == ("running", 1, "w1@host")
    assert running.started_at is not None and running.finished_at is None
    assert index_members(client, "t:jobs:queued") == []
    assert index_members(client, "t:jobs:running") == [job.id]

    assert store.update_progress(job.id, {"step": 10}, attempt=1)
    assert store.get(job.id).progress == {"step": 10}

    store.finish(job.id, "succeeded", attempt=1, result={"summary": {"outcome": "completed"}})
    done = store.get(job.id)
    assert done.status == "succeeded" and done.is_final
    assert done.result == {"summary": {"outcome": "completed"}}
    assert done.finished_at is not None and done.finished_at >= done.started_at
    assert index_members(client, "t:jobs:running") == []
    assert index_members(client, "t:jobs:succeeded") == [job.id]
    assert index_members(client, "t:jobs") == [job.id]
    assert_every_key_has_ttl(client)


@pytest.mark.parametrize("final", ["succeeded", "failed", "cancelled", "timed_out"])
def test_final_states_are_final(store, final):
    job = store.create(SPEC, name=None, queue="cpu")
    store.start(job.id, worker="w")
    store.finish(job.id, final, error="x" if final != "succeeded" else None)

    with pytest.raises(JobStateConflict):
        store.start(job.id, worker="w2")
    for other in ("succeeded", "failed", "cancelled", "timed_out"):
        with pytest.raises(JobStateConflict):
            store.finish(job.id, other)
    assert not store.update_progress(job.id, {"step": 1}, attempt=1)
    assert store.get(job.id).status == final


def test_a_queued_job_can_fail_or_be_cancelled_but_not_succeed(store):
    a, b, c = (store.create(SPEC, name=None, queue="cpu") for _ in range(3))
    store.finish(a.id, "failed", error="not enqueued")
    store.finish(b.id, "cancelled")
    with pytest.raises(JobStateConflict):
        store.finish(c.id, "succeeded", result={})
    with pytest.raises(JobStateConflict):
        store.finish(c.id, "timed_out")
    assert store.get(a.id).error == "not enqueued"


def test_a_new_attempt_fences_off_the_old_one(store):
    job = store.create(SPEC, name=None, queue="cpu")
    store.start(job.id, worker="w1")
    second = store.start(job.id, worker="w2")  # redelivered after w1 died
    assert (second.attempts, second.worker) == (2, "w2")

    assert not store.update_progress(job.id, {"step": 5}, attempt=1)
    with pytest.raises(JobStateConflict, match="superseded"):
        store.finish(job.id, "succeeded", attempt=1, result={})
    store.finish(job.id, "succeeded", attempt=2, result={"ok": True})
    assert store.get(job.id).result == {"ok": True}


def test_unknown_ids(store):
    with pytest.raises(JobNotFound):
        store.get("0" * 32)
    with pytest.raises(JobNotFound):
        store.get("../../etc")
    with pytest.raises(JobNotFound):
        store.start("0" * 32, worker="w")
    with pytest.raises(JobNotFound):
        store.finish("0" * 32, "failed")
    assert not store.update_progress("0" * 32, {}, attempt=1)


def test_writes_refresh_the_ttl(store, client):
    job = store.create(SPEC, name=None, queue="cpu")
    for key in client.scan_iter("t:*"):
        client.expire(key, 100)
    store.start(job.id, worker="w")
    for key in ("t:jobs", f"t:job:{job.id}", "t:jobs:running"):
        assert client.ttl(key) > 100, key
    client.expire(f"t:job:{job.id}", 100)
    store.update_progress(job.id, {"step": 1}, attempt=1)
    assert client.ttl(f"t:job:{job.id}") > 100


def test_results_must_be_json(store):
    job = store.create(SPEC, name=None, queue="cpu")
    store.start(job.id, worker="w")
    with pytest.raises(Exception, match="JSON"):
        store.finish(job.id, "succeeded", result={"loss": float("nan")})
    assert store.get(job.id).status == "running"


# --- listing ---------------------------------------------------------------------------------


def collect(store, **kwargs) -> tuple[list[str], int]:
    ids, cursor, pages = [], None, 0
    while True:
        page = store.list_jobs(cursor=cursor, **kwargs)
        pages += 1
        ids += [job.id for job in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids, pages


def test_pages_are_newest_first_and_complete(store):
    ids = [store.create(SPEC, name=str(i), queue="cpu").id for i in range(10)]
    listed, pages = collect(store, limit=4)
    assert pages == 3
    assert listed == list(reversed(ids))
    assert collect(store, limit=10) == (listed, 1)
    assert collect(store, limit=100) == (listed, 1)


def test_pages_handle_equal_creation_times(store, client):
    """Many jobs in the same millisecond: ties are ordered by id, still no gaps or repeats."""
    ids = [store.create(SPEC, name=None, queue="cpu").id for _ in range(9)]
    for key in ("t:jobs", "t:jobs:queued"):
        client.zadd(key, dict.fromkeys(ids, 1_700_000_000_000))
    for limit in (1, 2, 4):
        listed, _ = collect(store, limit=limit)
        assert listed == sorted(ids, reverse=True)
        listed, _ = collect(store, limit=limit, status="queued")
        assert listed == sorted(ids, reverse=True)


def test_status_filter(store):
    jobs = [store.create(SPEC, name=None, queue="cpu").id for _ in range(5)]
    for job_id in jobs[:3]:
        store.start(job_id, worker="w")
    store.finish(jobs[0], "failed", error="boom")

    assert collect(store, status="running", limit=1)[0] == [jobs[2], jobs[1]]
    assert collect(store, status="queued", limit=10)[0] == [jobs[4], jobs[3]]
    assert collect(store, status="failed", limit=10)[0] == [jobs[0]]
    assert collect(store, status="succeeded", limit=10)[0] == []


def test_bad_cursors(store):
    for cursor in ("", "!!", "e30", "WzEsMl0", "WyJ4IiwgIngiXQ"):
        with pytest.raises(InvalidCursor):
            store.list_jobs(cursor=cursor)


def test_listing_skips_and_prunes_expired_jobs(store, client):
    ids = [store.create(SPEC, name=None, queue="cpu").id for _ in range(6)]
    store.start(ids[0], worker="w")
    for job_id in (ids[0], ids[2], ids[3]):
        client.pexpire(f"t:job:{job_id}", 1)  # expire these records now
    time.sleep(0.05)

    listed, _ = collect(store, limit=2)
    assert listed == [ids[5], ids[4], ids[1]]
    assert set(index_members(client, "t:jobs")) == {ids[1], ids[4], ids[5]}
    assert index_members(client, "t:jobs:running") == []


def test_prune_index_sweeps_every_index(store, client):
    ids = [store.create(SPEC, name=None, queue="cpu").id for _ in range(250)]
    store.start(ids[0], worker="w")
    gone = ids[::3]
    for job_id in gone:
        client.delete(f"t:job:{job_id}")

    assert store.prune_index() == len(gone)
    remaining = set(ids) - set(gone)
    assert set(index_members(client, "t:jobs")) == remaining
    assert set(index_members(client, "t:jobs:queued")) == remaining - {ids[0]}
    assert index_members(client, "t:jobs:running") == []
    assert store.prune_index() == 0


def test_every_status_has_an_index_key(store):
    assert {store.index_key(s) for s in STATUSES} == {f"t:jobs:{s}" for s in STATUSES}


# --- Redis down ------------------------------------------------------------------------------


def test_redis_errors_become_store_unavailable():
    settings = Settings(redis_url=f"redis://127.0.0.1:{free_port()}/0")
    down = RedisJobStore(connect(settings), prefix="t", retention_seconds=RETENTION)
    with pytest.raises(StoreUnavailable) as info:
        down.ping()
    assert isinstance(info.value.__cause__, redis.exceptions.ConnectionError)
    for call in (lambda: down.create(SPEC, name=None, queue="cpu"),
                 lambda: down.get("0" * 32),
                 lambda: down.list_jobs(),
                 lambda: down.start("0" * 32, worker="w"),
                 lambda: down.update_progress("0" * 32, {}, attempt=1)):
        with pytest.raises(StoreUnavailable):
            call()
