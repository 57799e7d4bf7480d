"""The experiment use cases as plain functions: a real Redis job store and intake (the store's
Redis is also the broker: a submission's task lands on its queue's list), and a recording
``JobDispatcher``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence

import pytest
import redis.asyncio

from service.auth import ANONYMOUS, Caller
from service.schemas.experiments import ExperimentCreate
from service.settings import ServiceSettings
from service.usecases import experiments
from worker.core.errors import (
    IdempotencyKeyReused,
    JobNotFound,
    JobStateConflict,
    QuotaExceeded,
)
from worker.jobs.redis_intake import RedisJobIntake
from worker.jobs.redis_store import RedisJobStore

DB = 7


class Dispatcher:
    """A ``JobDispatcher`` that records what it sends (cancel's webhook)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    def enqueue(self, job_id: str, *, queue: str, cohort: Sequence[str] = ()) -> None:
        self.sent.append(("run", job_id))

    def send_webhook(self, job_id: str) -> None:
        self.sent.append(("webhook", job_id))

    def close(self) -> None:
        pass


@pytest.fixture
def store(redis_server) -> RedisJobStore:
    client = redis_server.client(DB)
    client.flushdb()
    return RedisJobStore(client, prefix="u", retention_seconds=600)


@pytest.fixture
def settings() -> ServiceSettings:
    return ServiceSettings(webhook_allowlist=["*.example.com"])


@pytest.fixture
def body(spec_doc) -> ExperimentCreate:
    return ExperimentCreate.model_validate(spec_doc())


@pytest.fixture
def submit(redis_server, settings, store):
    """``submit_experiment`` through a real ``RedisJobIntake`` (redis.asyncio) on ``store``'s
    database, each call on its own event loop."""

    def call(body, caller=ANONYMOUS, key=None):
        async def go():
            client = redis.asyncio.Redis(port=redis_server.port, db=DB, decode_responses=True)
            intake = RedisJobIntake(client, prefix=store.prefix, retention_seconds=600)
            try:
                return await experiments.submit_experiment(
                    body, settings=settings, intake=intake, caller=caller, idempotency_key=key)
            finally:
                await intake.close()
        return asyncio.run(go())

    return call


def waiting(store: RedisJobStore, queue: str = "cpu") -> list[str]:
    """The job ids of the run tasks on ``queue``'s broker list, oldest first."""
    return [json.loads(raw)["headers"]["argsrepr"].strip("[']")
            for raw in reversed(store.client.lrange(queue, 0, -1))]


def test_submit_records_and_enqueues_in_one_write_and_replays_a_key(body, store, submit):
    first = submit(body, key="k")
    again = submit(body, key="k")
    assert first.created and not again.created and again.job.id == first.job.id
    assert waiting(store) == [first.job.id]  # the replay enqueued nothing
    assert store.get(first.job.id).status == "queued"
    other = submit(body)
    assert waiting(store) == [first.job.id, other.job.id]


def test_a_refused_submission_enqueues_nothing(body, store, submit):
    alice = Caller(name="alice", max_queued=1)
    job = submit(body, caller=alice, key="k").job
    with pytest.raises(QuotaExceeded):
        submit(body, caller=alice)
    with pytest.raises(IdempotencyKeyReused):
        submit(body.model_copy(update={"name": "another"}), caller=alice, key="k")
    assert waiting(store) == [job.id]
    assert [j.id for j in store.list_jobs().items] == [job.id]


def test_another_keys_job_does_not_exist(body, store, submit):
    alice, bob = Caller(name="alice"), Caller(name="bob")
    job = submit(body, caller=alice).job
    assert experiments.get_experiment(store, job.id, alice).id == job.id
    for call in (lambda: experiments.get_experiment(store, job.id, bob),
                 lambda: experiments.cancel_experiment(store, Dispatcher(), job.id, bob),
                 lambda: experiments.delete_experiment(store, job.id, bob)):
        with pytest.raises(JobNotFound):
            call()
    assert [j.id for j in experiments.list_experiments(store, bob).items] == []
    assert store.get(job.id).status == "queued"


def test_cancel_then_delete(spec_doc, store, submit):
    body = ExperimentCreate.model_validate({**spec_doc(),
                                            "callback_url": "https://hook.example.com/x"})
    dispatcher = Dispatcher()
    job = submit(body).job
    with pytest.raises(JobStateConflict):
        experiments.delete_experiment(store, job.id, ANONYMOUS)
    cancelled = experiments.cancel_experiment(store, dispatcher, job.id, ANONYMOUS)
    assert cancelled.status == "cancelled" and ("webhook", job.id) in dispatcher.sent
    experiments.delete_experiment(store, job.id, ANONYMOUS)
    with pytest.raises(JobNotFound):
        store.get(job.id)
