"""Tags, sweeps and filtered listings of RedisJobStore against a real redis-server: the
per-tag and per-sweep indexes (written by the create script, with TTLs, removed on delete and
by pruning), listings that combine filters page by page without gaps or repeats, and the
verdict a listing shows of a finished job."""

from __future__ import annotations

import itertools
import time
from datetime import UTC, datetime, timedelta

import pytest

from worker.jobs.records import JobFilter, JobSummary
from worker.jobs.redis_store import RedisJobStore

RETENTION = 3600
SPEC = '{"spec_version":1}'
SWEEP = "5" * 32
DB = 1  # JOBSTORE_DB in tests/conftest.py: job store tests, flushed by each


@pytest.fixture
def client(redis_server):
    client = redis_server.client(DB)
    client.flushdb()
    return client


@pytest.fixture
def store(client) -> RedisJobStore:
    return RedisJobStore(client, prefix="t", retention_seconds=RETENTION)


def collect(store, limit: int, **filters) -> list[str]:
    ids, cursor = [], None
    while True:
        page = store.list_jobs(limit=limit, cursor=cursor, **filters)
        assert len(page.items) <= limit
        ids += [job.id for job in page.items]
        cursor = page.next_cursor
        if cursor is None:
            return ids


def test_tags_are_kept_once_each_in_order(store):
    job = store.create(SPEC, name=None, queue="cpu", tags=["b", "a", "b"])
    assert job.tags == ("b", "a")
    assert store.get(job.id).tags == ("b", "a")
    assert store.list_jobs().items[0].tags == ("b", "a")
    assert store.create(SPEC, name=None, queue="cpu").tags == ()


@pytest.mark.parametrize("tags", [["has space"], ["*"], [""], ["x" * 41], ["-lead"],
                                  [f"t{i}" for i in range(17)]])
def test_bad_tags_are_refused_before_anything_is_written(store, client, tags):
    with pytest.raises(ValueError, match="tags"):
        store.create(SPEC, name=None, queue="cpu", tags=tags)
    assert list(client.scan_iter("t:*")) == []


def test_the_create_script_writes_tag_and_sweep_indexes_with_ttls(store, client):
    job = store.create(SPEC, name=None, queue="cpu", tags=["team:vision", "v2"],
                       sweep_id=SWEEP)
    for key in ("t:tag:team:vision:jobs", "t:tag:v2:jobs", f"t:sweep:{SWEEP}:jobs"):
        assert client.zrange(key, 0, -1) == [job.id]
        assert client.zscore(key, job.id) == client.zscore("t:jobs", job.id)
        assert 0 < client.ttl(key) <= RETENTION, key


def test_delete_removes_the_job_from_its_tag_and_sweep_indexes(store, client):
    job = store.create(SPEC, name=None, queue="cpu", tags=["a"], sweep_id=SWEEP)
    keep = store.create(SPEC, name=None, queue="cpu", tags=["a"], sweep_id=SWEEP)
    store.request_cancel(job.id)
    store.delete(job.id)
    assert client.zrange("t:tag:a:jobs", 0, -1) == [keep.id]
    assert client.zrange(f"t:sweep:{SWEEP}:jobs", 0, -1) == [keep.id]


def test_prune_sweeps_tag_and_sweep_indexes(store, client):
    ids = [store.create(SPEC, name=None, queue="cpu", tags=["a"], sweep_id=SWEEP).id
           for _ in range(4)]
    client.delete(f"t:job:{ids[1]}")
    assert store.prune_index() == 1
    assert set(client.zrange("t:tag:a:jobs", 0, -1)) == set(ids) - {ids[1]}
    assert set(client.zrange(f"t:sweep:{SWEEP}:jobs", 0, -1)) == set(ids) - {ids[1]}


def make_jobs(store) -> None:
    """24 jobs over every combination of two tags, a sweep, an owner and three statuses."""
    combos = itertools.product([(), ("a",), ("a", "b"), ("b",)], [None, SWEEP],
                               ["queued", "running", "failed"])
    for n, (tags, sweep, status) in enumerate(combos):
        job = store.create(SPEC, name=str(n), queue="cpu", tags=tags, sweep_id=sweep,
                           owner="k1" if n % 3 == 0 else "k2")
        if status != "queued":
            store.start(job.id, worker="w")
        if status == "failed":
            store.finish(job.id, "failed", error="boom")


@pytest.mark.parametrize("filters", [
    {"tags": ["a"]}, {"tags": ["b"]}, {"tags": ["a", "b"]}, {"tags": ["none"]},
    {"sweep_id": SWEEP}, {"sweep_id": SWEEP, "tags": ["b"]}, {"status": "running"},
    {"status": "failed", "tags": ["a"]}, {"status": "queued", "sweep_id": SWEEP},
    {"owner": "k1", "tags": ["a"]}, {"owner": "k2", "status": "failed", "sweep_id": SWEEP},
])
def test_filters_combine_and_pages_have_no_gaps_or_repeats(store, filters):
    make_jobs(store)
    everything = store.list_jobs(limit=100).items
    keep = JobFilter(status=filters.get("status"), owner=filters.get("owner"),
                     tags=tuple(filters.get("tags", ())), sweep_id=filters.get("sweep_id"))
    expected = [job.id for job in everything if keep.matches(job)]
    if filters != {"tags": ["none"]}:
        assert 0 < len(expected) < len(everything)
    for limit in (1, 2, 5, 100):
        assert collect(store, limit, **filters) == expected, limit


def test_jobs_created_during_a_listing_do_not_shift_its_pages(store):
    ids = [store.create(SPEC, name=None, queue="cpu", tags=["a"]).id for _ in range(5)]
    first = store.list_jobs(limit=2, tags=["a"])
    store.create(SPEC, name=None, queue="cpu", tags=["a"])
    rest = collect_from(store, first.next_cursor, tags=["a"])
    assert [j.id for j in first.items] + rest == list(reversed(ids))


def collect_from(store, cursor, **filters) -> list[str]:
    ids = []
    while cursor is not None:
        page = store.list_jobs(limit=2, cursor=cursor, **filters)
        ids += [job.id for job in page.items]
        cursor = page.next_cursor
    return ids


def test_created_after_is_strict_and_combines(store):
    first = store.create(SPEC, name=None, queue="cpu", tags=["a"])
    time.sleep(0.01)
    later = [store.create(SPEC, name=None, queue="cpu", tags=["a"] if i % 2 else []).id
             for i in range(4)]
    assert collect(store, 1, created_after=first.created_at) == list(reversed(later))
    assert collect(store, 2, created_after=first.created_at, tags=["a"]) == [later[3], later[1]]
    before = first.created_at - timedelta(seconds=1)
    assert len(collect(store, 2, created_after=before)) == 5
    assert collect(store, 2, created_after=datetime.now(UTC) + timedelta(hours=1)) == []


def test_a_finished_job_shows_its_headline_and_top_finding(store):
    job = store.create(SPEC, name=None, queue="cpu")
    store.start(job.id, worker="w")
    result = {"headline": "Will not train as specified: vanishing gradients at init.",
              "findings": [{"code": "vanishing_gradients_at_init", "severity": "critical"},
                           {"code": "frozen_layers", "severity": "warning"}]}
    store.finish(job.id, "succeeded", result=result)
    (listed,) = store.list_jobs().items
    assert listed.headline == result["headline"]
    assert listed.top_finding == ("vanishing_gradients_at_init", "critical")
    assert store.get(job.id).top_finding == listed.top_finding
    other = store.create(SPEC, name=None, queue="cpu")
    assert store.get(other.id).headline is None and store.get(other.id).top_finding is None


def test_job_filter_matches_every_condition():
    now = datetime.now(UTC)
    job = JobSummary(id="1" * 32, status="running", name=None, created_at=now, updated_at=now,
                     started_at=None, finished_at=None, attempts=1, owner="k", tags=("a", "b"),
                     sweep_id=SWEEP)
    assert JobFilter().matches(job)
    assert JobFilter(status="running", owner="k", tags=("b", "a"), sweep_id=SWEEP,
                     created_after=now - timedelta(seconds=1)).matches(job)
    for miss in (JobFilter(status="queued"), JobFilter(owner="x"), JobFilter(tags=("a", "c")),
                 JobFilter(sweep_id="6" * 32), JobFilter(created_after=now)):
        assert not miss.matches(job), miss
