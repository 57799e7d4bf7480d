"""The job store's lifecycle scripts on a real Redis: claim and lease, cancel, reap, delete,
idempotency, per-owner quota, the webhook outbox, the duration histogram, events, TTLs."""

from __future__ import annotations

import threading
import time

import pytest

from worker.core.errors import IdempotencyKeyReused, JobNotFound, JobStateConflict, QuotaExceeded
from worker.jobs.records import Lease
from worker.jobs.redis_store import RedisJobStore

DB = 12
RETENTION = 3600
SPEC = '{"spec_version":1}'


@pytest.fixture
def client(redis_server):
    client = redis_server.client(DB)
    client.flushdb()
    return client


@pytest.fixture
def store(client) -> RedisJobStore:
    return RedisJobStore(client, prefix="t", retention_seconds=RETENTION)


def claim(store, job_id, holder="w@h|1", **kw):
    kw.setdefault("lease_ttl_s", 30)
    kw.setdefault("max_attempts", 3)
    return store.claim(job_id, worker=holder.split("|")[0], holder=holder, **kw)


# --- claim and lease -------------------------------------------------------------------------


def test_claim_starts_an_attempt_with_a_lease(store, client):
    job = store.create(SPEC, name=None, queue="cpu")
    got = claim(store, job.id, holder="w@h|42", lease_ttl_s=5)
    assert (got.outcome, got.attempt) == ("started", 1)
    record = store.get(job.id)
    assert (record.status, record.attempts, record.worker) == ("running", 1, "w@h")
    assert store.lease(job.id) == "w@h|42|1"
    assert 0 < client.pttl(store.lease_key(job.id)) <= 5000
    assert Lease.parse(store.lease(job.id)) == Lease(node="w@h", pid=42, attempt=1)


def test_a_live_lease_turns_a_second_delivery_away(store):
    job = store.create(SPEC, name=None, queue="cpu")
    claim(store, job.id, holder="a@h|1")
    busy = claim(store, job.id, holder="b@h|2")
    assert busy.outcome == "busy" and busy.lease == "a@h|1|1"
    assert store.get(job.id).attempts == 1  # nothing counted, nothing changed


def test_an_expired_or_replaced_lease_lets_the_next_attempt_in(store, client):
    job = store.create(SPEC, name=None, queue="cpu")
    claim(store, job.id, holder="a@h|1")
    taken = claim(store, job.id, holder="a@h|2", replace="a@h|1|1")  # same node, dead pid
    assert (taken.outcome, taken.attempt) == ("started", 2)
    client.delete(store.lease_key(job.id))  # attempt 2's process died long ago
    third = claim(store, job.id, holder="b@h|3")
    assert (third.outcome, third.attempt) == ("started", 3)
    # the old attempts are fenced off
    assert not store.update_progress(job.id, {"step": 1}, attempt=2)
    assert store.renew_lease(job.id, attempt=2, lease="a@h|2|2", lease_ttl_s=5) == "lost"


def test_claim_gives_up_after_max_attempts(store):
    job = store.create(SPEC, name=None, queue="cpu")
    claim(store, job.id, holder="a@h|1", max_attempts=2, lease_ttl_s=0.05)
    time.sleep(0.1)
    claim(store, job.id, holder="a@h|2", max_attempts=2, lease_ttl_s=0.05)
    time.sleep(0.1)
    gave_up = claim(store, job.id, holder="a@h|3", max_attempts=2)
    assert gave_up.outcome == "exhausted"
    record = store.get(job.id)
    assert record.status == "failed" and record.attempts == 2
    assert "gave up after 2 attempt(s)" in record.error and "lost" in record.error


def test_claim_of_a_final_or_missing_job(store):
    job = store.create(SPEC, name=None, queue="cpu")
    store.finish(job.id, "failed", error="x")
    assert claim(store, job.id).outcome == "final"
    assert claim(store, "0" * 32).outcome == "missing"


def test_heartbeat_renews_and_reports_cancel(store, client):
    job = store.create(SPEC, name=None, queue="cpu")
    claim(store, job.id, holder="a@h|1", lease_ttl_s=1)
    assert store.renew_lease(job.id, attempt=1, lease="a@h|1|1", lease_ttl_s=30) == "ok"
    assert client.pttl(store.lease_key(job.id)) > 25_000
    store.request_cancel(job.id)
    assert store.renew_lease(job.id, attempt=1, lease="a@h|1|1", lease_ttl_s=30) == "cancel"
    assert store.is_cancel_requested(job.id)


# --- cancel ----------------------------------------------------------------------------------


def test_cancelling_a_queued_job_ends_it_and_it_never_starts(store):
    job = store.create(SPEC, name=None, queue="cpu")
    assert store.request_cancel(job.id) == "cancelled"
    record = store.get(job.id)
    assert record.status == "cancelled" and record.cancel_requested
    assert record.error == "cancelled before it started"
    assert claim(store, job.id).outcome == "final"


def test_cancelling_a_running_job_sets_the_flag_only(store):
    job = store.create(SPEC, name=None, queue="cpu")
    claim(store, job.id)
    assert store.request_cancel(job.id) == "running"
    assert store.request_cancel(job.id) == "running"  # asking twice is fine
    record = store.get(job.id)
    assert record.status == "running" and record.cancel_requested


def test_a_flagged_job_that_comes_back_is_cancelled_not_run(store, client):
    job = store.create(SPEC, name=None, queue="cpu")
    claim(store, job.id)
    store.request_cancel(job.id)
    client.delete(store.lease_key(job.id))  # its worker died before it saw the flag
    assert claim(store, job.id, holder="b@h|9").outcome == "cancelled"
    assert store.get(job.id).status == "cancelled"


def test_cancel_of_a_final_or_unknown_job(store):
    job = store.create(SPEC, name=None, queue="cpu")
    store.finish(job.id, "failed", error="x")
    with pytest.raises(JobStateConflict, match="already ended"):
        store.request_cancel(job.id)
    with pytest.raises(JobNotFound):
        store.request_cancel("0" * 32)


# --- reap ------------------------------------------------------------------------------------


def test_reap_requeues_a_lost_attempt_then_fails_it_at_max_attempts(store, client):
    job = store.create(SPEC, name=None, queue="cpu")
    claim(store, job.id, holder="a@h|1")
    assert store.reap(job.id, attempt=1, max_attempts=2, lost_after_s=30) == "alive"
    client.delete(store.lease_key(job.id))
    assert [r.lease_alive for r in store.running_jobs()] == [False]
    assert store.reap(job.id, attempt=1, max_attempts=2, lost_after_s=30,
                      worker="a@h") == "requeued"
    requeued = store.get(job.id)
    assert requeued.status == "queued" and requeued.attempts == 1
    assert "attempt 1 on a@h was lost" in requeued.error
    assert [j for j, *_ in store.queued_jobs()] == [job.id]

    claim(store, job.id, holder="b@h|2")
    assert store.get(job.id).error is None  # a new attempt clears the note
    client.delete(store.lease_key(job.id))
    assert store.reap(job.id, attempt=1, max_attempts=2, lost_after_s=30) == "skip"  # stale
    assert store.reap(job.id, attempt=2, max_attempts=2, lost_after_s=30) == "failed"
    failed = store.get(job.id)
    assert failed.status == "failed" and "gave up after 2" in failed.error


def test_reap_cancels_a_lost_job_that_was_asked_to_stop(store, client):
    job = store.create(SPEC, name=None, queue="cpu")
    claim(store, job.id)
    store.request_cancel(job.id)
    client.delete(store.lease_key(job.id))
    assert store.reap(job.id, attempt=1, max_attempts=3, lost_after_s=30) == "cancelled"
    assert store.get(job.id).status == "cancelled"


def test_touch_queued_only_if_unchanged(store):
    job = store.create(SPEC, name=None, queue="cpu")
    ((job_id, queue, ts),) = store.queued_jobs()
    assert (job_id, queue) == (job.id, "cpu")
    assert store.touch_queued(job.id, ts)
    assert not store.touch_queued(job.id, ts)  # someone touched it since
    (_, _, newer), = store.queued_jobs()
    assert float(newer) >= float(ts)


# --- delete ----------------------------------------------------------------------------------


def test_delete_a_final_job_removes_it_everywhere(store, client):
    job = store.create(SPEC, name=None, queue="cpu", owner="alice", callback_url="http://x/")
    claim(store, job.id)
    with pytest.raises(JobStateConflict):
        store.delete(job.id)
    store.finish(job.id, "succeeded", attempt=1, result={})
    assert client.zcard(store.outbox_key()) == 1
    store.delete(job.id)
    with pytest.raises(JobNotFound):
        store.get(job.id)
    for key in client.scan_iter("t:*"):
        if client.type(key) == "zset":
            assert client.zscore(key, job.id) is None, key
    with pytest.raises(JobNotFound):
        store.delete(job.id)


# --- idempotency and quota -------------------------------------------------------------------


def test_idempotent_create(store):
    kwargs = {"name": None, "queue": "cpu", "idempotency_key": "k1", "ttl_s": 600,
              "owner": "alice"}
    first, created = store.create_idempotent(SPEC, fingerprint="f1", **kwargs)
    again, created_again = store.create_idempotent(SPEC, fingerprint="f1", **kwargs)
    assert created and not created_again and again.id == first.id
    with pytest.raises(IdempotencyKeyReused) as info:
        store.create_idempotent(SPEC, fingerprint="f2", **kwargs)
    assert info.value.field == "Idempotency-Key" and info.value.location == "header"
    # keys are per owner
    other, created_other = store.create_idempotent(SPEC, fingerprint="f1",
                                                   **{**kwargs, "owner": "bob"})
    assert created_other and other.id != first.id
    # a key whose job is gone creates a new one
    store.finish(first.id, "failed", error="x")
    store.delete(first.id)
    fresh, created_fresh = store.create_idempotent(SPEC, fingerprint="f9", **kwargs)
    assert created_fresh and fresh.id != first.id


def test_concurrent_duplicates_make_one_job(store):
    ids, errors = [], []

    def submit():
        try:
            job, _ = store.create_idempotent(SPEC, name=None, queue="cpu",
                                             idempotency_key="same", fingerprint="f",
                                             ttl_s=600)
            ids.append(job.id)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=submit) for _ in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(ids) == 16 and len(set(ids)) == 1
    assert store.list_jobs(limit=100).items[0].id == ids[0]
    assert len(store.list_jobs(limit=100).items) == 1


def test_quota_counts_queued_and_running_jobs_of_the_owner(store):
    a = store.create(SPEC, name=None, queue="cpu", owner="alice", max_active=2)
    store.create(SPEC, name=None, queue="cpu", owner="alice", max_active=2)
    store.create(SPEC, name=None, queue="cpu", owner="bob", max_active=2)  # another key
    with pytest.raises(QuotaExceeded) as info:
        store.create(SPEC, name=None, queue="cpu", owner="alice", max_active=2)
    assert info.value.limit == 2
    claim(store, a.id)  # running still counts
    with pytest.raises(QuotaExceeded):
        store.create(SPEC, name=None, queue="cpu", owner="alice", max_active=2)
    store.finish(a.id, "succeeded", attempt=1, result={})
    store.create(SPEC, name=None, queue="cpu", owner="alice", max_active=2)


def test_listing_by_owner(store):
    mine = [store.create(SPEC, name=None, queue="cpu", owner="alice").id for _ in range(3)]
    store.create(SPEC, name=None, queue="cpu", owner="bob")
    store.create(SPEC, name=None, queue="cpu")
    page = store.list_jobs(owner="alice", limit=2)
    assert [j.id for j in page.items] == mine[::-1][:2]
    rest = store.list_jobs(owner="alice", limit=2, cursor=page.next_cursor)
    assert [j.id for j in rest.items] == [mine[0]] and rest.next_cursor is None
    store.finish(mine[1], "failed", error="x")
    assert [j.id for j in store.list_jobs(owner="alice", status="failed").items] == [mine[1]]
    assert all(j.owner == "alice" for j in store.list_jobs(owner="alice").items)


# --- outbox, histogram, events, TTLs ---------------------------------------------------------


def test_final_states_feed_the_outbox_histogram_and_channel(store, client):
    pubsub = client.pubsub()
    job = store.create(SPEC, name=None, queue="cpu", callback_url="http://h/")
    pubsub.subscribe(store.events_channel(job.id))
    claim(store, job.id)
    store.update_progress(job.id, {"step": 1}, attempt=1)
    store.finish(job.id, "succeeded", attempt=1, result={})
    words = []
    deadline = time.monotonic() + 2
    while len(words) < 3 and time.monotonic() < deadline:
        message = pubsub.get_message(ignore_subscribe_messages=True, timeout=0.2)
        if message:
            words.append(message["data"])
    assert words == ["running", "progress", "succeeded"]
    assert store.lease(job.id) is None  # the final status ended the lease
    assert store.webhook_outbox(idle_for_s=0) == [job.id]
    store.set_webhook_state(job.id, {"state": "delivered"}, pending=False)
    assert store.webhook_outbox(idle_for_s=0) == []
    assert store.get(job.id).webhook == {"state": "delivered"}
    snapshot = store.snapshot()
    assert snapshot.jobs["succeeded"] == 1
    hist = snapshot.durations["succeeded"]
    assert hist["+Inf"] == 1 and hist["1"] == 1 and hist["sum"] < 1


def test_every_key_has_a_ttl(store, client):
    job = store.create(SPEC, name=None, queue="cpu", owner="alice", callback_url="http://h/")
    store.create_idempotent(SPEC, name=None, queue="cpu", idempotency_key="k", fingerprint="f",
                            ttl_s=600, owner="alice")
    claim(store, job.id)
    store.finish(job.id, "succeeded", attempt=1, result={})
    keys = list(client.scan_iter("t:*"))
    assert any(":idem:" in k for k in keys) and any(":owner:" in k for k in keys)
    for key in keys:
        assert 0 < client.ttl(key) <= RETENTION, key


def test_prune_sweeps_owner_indexes_and_the_outbox(store, client):
    job = store.create(SPEC, name=None, queue="cpu", owner="alice", callback_url="http://h/")
    store.finish(job.id, "failed", error="x")
    client.delete(store.job_key(job.id))  # expired
    assert store.prune_index() == 1
    assert client.zcard(store.owner_index_key("alice")) == 0
    assert client.zcard(store.outbox_key()) == 0
