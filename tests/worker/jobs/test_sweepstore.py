"""RedisSweepStore against a real redis-server: records, job history, TTLs, pages."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from worker.core.errors import InvalidCursor, SweepNotFound
from worker.jobs.records import SweepPoint, SweepRecord, new_sweep_id
from worker.jobs.sweep_store import RedisSweepStore

DB = 5
TTL = 600


@pytest.fixture
def store(redis_server) -> RedisSweepStore:
    client = redis_server.client(DB)
    client.flushdb()
    return RedisSweepStore(client, prefix="s", retention_seconds=TTL)


def record(points: int = 2) -> SweepRecord:
    now = datetime.now(UTC)
    return SweepRecord(
        id=new_sweep_id(), name="n", mode="grid", base={"spec_version": 1},
        axes={"model.depth": [2, 4][:points]}, variants=None,
        points=[SweepPoint(index=i, values={"model.depth": 2 * (i + 1)}, job_ids=[f"j{i}"])
                for i in range(points)],
        created_at=now, updated_at=now,
    )


def test_a_sweep_round_trips_with_ttl(store, redis_server):
    sweep = record()
    store.create(sweep)
    assert store.get(sweep.id) == sweep
    client = redis_server.client(DB)
    for key in (store.sweep_key(sweep.id), store.index_key()):
        assert 0 < client.ttl(key) <= TTL


def test_reruns_append_to_a_points_history(store):
    sweep = record()
    store.create(sweep)
    store.add_job(sweep.id, 1, "j9")
    store.add_job(sweep.id, 1, "j10")
    again = store.get(sweep.id)
    assert [p.job_ids for p in again.points] == [["j0"], ["j1", "j9", "j10"]]
    assert again.updated_at >= sweep.updated_at
    with pytest.raises(SweepNotFound):
        store.add_job(new_sweep_id(), 0, "j")


def test_unknown_and_malformed_ids_are_not_found(store):
    for sweep_id in ("nope", new_sweep_id()):
        with pytest.raises(SweepNotFound):
            store.get(sweep_id)


def test_pages_are_newest_first_and_skip_expired_sweeps(store, redis_server):
    sweeps = [record(1) for _ in range(5)]
    for s in sweeps:
        store.create(s)
    redis_server.client(DB).delete(store.sweep_key(sweeps[3].id))  # expired
    first = store.list_sweeps(limit=2)
    assert [s.id for s in first.items] == [sweeps[4].id, sweeps[2].id]
    second = store.list_sweeps(limit=2, cursor=first.next_cursor)
    assert [s.id for s in second.items] == [sweeps[1].id, sweeps[0].id]
    assert second.next_cursor is None
    with pytest.raises(InvalidCursor):
        store.list_sweeps(cursor="garbage")
