"""The experiment use cases as plain functions: a real Redis job store, and a dispatcher that
is a real ``JobDispatcher`` whose broker is down."""

from __future__ import annotations

import pytest

from service.auth import ANONYMOUS, Caller
from service.schemas.experiments import ExperimentCreate
from service.settings import ServiceSettings
from service.usecases import experiments
from worker.core.errors import BrokerUnavailable, JobNotFound, JobStateConflict
from worker.jobs.redis_store import RedisJobStore

DB = 7


class Dispatcher:
    """A ``JobDispatcher`` that records what it sends, or fails like a broker that is down."""

    def __init__(self, *, down: bool = False) -> None:
        self.down = down
        self.sent: list[tuple[str, str]] = []

    def enqueue(self, job_id: str, *, queue: str) -> None:
        if self.down:
            raise BrokerUnavailable("broker down")
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


def submit(body, settings, store, dispatcher, caller=ANONYMOUS, key=None):
    return experiments.submit_experiment(body, settings=settings, store=store,
                                         dispatcher=dispatcher, caller=caller,
                                         idempotency_key=key)


def test_submit_records_then_enqueues_and_replays_a_key(body, settings, store):
    dispatcher = Dispatcher()
    first = submit(body, settings, store, dispatcher, key="k")
    again = submit(body, settings, store, dispatcher, key="k")
    assert first.created and not again.created and again.job.id == first.job.id
    assert dispatcher.sent == [("run", first.job.id)]
    assert store.get(first.job.id).status == "queued"


def test_a_failed_enqueue_fails_the_job_and_frees_the_key(body, settings, store):
    with pytest.raises(BrokerUnavailable):
        submit(body, settings, store, Dispatcher(down=True), key="k")
    (failed,) = store.list_jobs().items
    assert failed.status == "failed" and "not enqueued" in (store.get(failed.id).error or "")
    retried = submit(body, settings, store, Dispatcher(), key="k")
    assert retried.created and retried.job.id != failed.id


def test_another_keys_job_does_not_exist(body, settings, store):
    alice, bob = Caller(name="alice"), Caller(name="bob")
    job = submit(body, settings, store, Dispatcher(), caller=alice).job
    assert experiments.get_experiment(store, job.id, alice).id == job.id
    for call in (lambda: experiments.get_experiment(store, job.id, bob),
                 lambda: experiments.cancel_experiment(store, Dispatcher(), job.id, bob),
                 lambda: experiments.delete_experiment(store, job.id, bob)):
        with pytest.raises(JobNotFound):
            call()
    assert [j.id for j in experiments.list_experiments(store, bob).items] == []
    assert store.get(job.id).status == "queued"


def test_cancel_then_delete(spec_doc, settings, store):
    body = ExperimentCreate.model_validate({**spec_doc(),
                                            "callback_url": "https://hook.example.com/x"})
    dispatcher = Dispatcher()
    job = submit(body, settings, store, dispatcher).job
    with pytest.raises(JobStateConflict):
        experiments.delete_experiment(store, job.id, ANONYMOUS)
    cancelled = experiments.cancel_experiment(store, dispatcher, job.id, ANONYMOUS)
    assert cancelled.status == "cancelled" and ("webhook", job.id) in dispatcher.sent
    experiments.delete_experiment(store, job.id, ANONYMOUS)
    with pytest.raises(JobNotFound):
        store.get(job.id)
