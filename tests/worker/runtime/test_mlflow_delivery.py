"""The worker's MLflow export on a real Redis job store, the real Celery dispatcher (messages
land in the broker list; no worker consumes them) and a real MLflow file store: when it is
queued, what it records on the job, retries, and the reaper re-sending a quiet one."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from worker.core.settings import Settings
from worker.jobs.dispatch import EXPORT_MLFLOW_TASK, CeleryDispatcher
from worker.jobs.redis_store import RedisJobStore
from worker.runtime.mlflow_delivery import announce_export, export_job
from worker.runtime.reaper import Reaper

DB = 12  # as tests/worker/jobs/test_webhooks.py: flushed by each test
FIXTURE = Path(__file__).resolve().parents[2] / "client" / "mlflow_result.json"


@pytest.fixture
def client(redis_server):
    client = redis_server.client(DB)
    client.flushdb()
    return client


@pytest.fixture
def store_uri(tmp_path, monkeypatch) -> str:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # see tests/client/test_mlflow_export
    return str((tmp_path / "mlruns").as_uri())


@pytest.fixture
def settings(redis_server, store_uri) -> Settings:
    return Settings(redis_url=redis_server.url(DB), key_prefix="mlf",
                    mlflow_tracking_uri=store_uri, mlflow_experiment="ci")


@pytest.fixture
def store(client, settings) -> RedisJobStore:
    return RedisJobStore(client, prefix=settings.key_prefix, retention_seconds=600)


@pytest.fixture
def dispatcher(settings):
    dispatcher = CeleryDispatcher.from_settings(settings)
    yield dispatcher
    dispatcher.close()


def finished(store: RedisJobStore, status: str = "succeeded", with_result: bool = True):
    saved = json.loads(FIXTURE.read_text())
    job = store.create(json.dumps(saved["spec"]), name="tiny", queue="cpu", tags=["ci"])
    store.claim(job.id, worker="w", holder="w|1", lease_ttl_s=30, max_attempts=3)
    store.finish(job.id, status, attempt=1,  # type: ignore[arg-type]
                 result=saved["result"] if with_result else None,
                 error=None if with_result else "boom")
    return store.get(job.id)


def export_messages(client) -> list[str]:
    return [json.loads(raw)["headers"]["task"] for raw in client.lrange("webhooks", 0, -1)]


def test_without_the_setting_nothing_is_queued_or_recorded(store, client, dispatcher,
                                                           redis_server):
    job = finished(store)
    unset = Settings(redis_url=redis_server.url(DB), key_prefix="mlf")
    assert unset.mlflow_tracking_uri is None
    assert announce_export(store, job, unset, dispatcher) is False
    assert store.get(job.id).mlflow is None and store.mlflow_outbox(0) == []
    assert client.llen("webhooks") == 0


def test_a_finished_job_with_a_result_is_queued_for_export(store, client, dispatcher,
                                                           settings):
    job = finished(store)
    failed = finished(store, "failed", with_result=False)
    assert announce_export(store, failed, settings, dispatcher) is False  # nothing to log
    assert announce_export(store, job, settings, dispatcher) is True
    assert store.get(job.id).mlflow["state"] == "queued"
    assert store.mlflow_outbox(0) == [job.id]
    assert export_messages(client) == [EXPORT_MLFLOW_TASK]  # on the notifier's queue


def test_an_export_is_logged_and_recorded(store, settings, store_uri):
    job = finished(store)
    assert export_job(store, job.id, settings, attempt=1, last_attempt=False) == "exported"
    state = store.get(job.id).mlflow
    assert state["state"] == "exported" and state["attempts"] == 1
    assert state["last_error"] is None
    run = MlflowClient(tracking_uri=store_uri).get_run(state["run_id"])
    assert run.info.experiment_id == state["experiment_id"]
    assert run.data.tags["trainability.experiment_id"] == job.id
    assert run.data.tags["trainability.tags"] == "ci"
    assert run.data.params["model.depth"] == "3"
    assert store.mlflow_outbox(0) == []
    # a second delivery of the same task finds that run
    assert export_job(store, job.id, settings, attempt=1, last_attempt=False) == "exported"
    assert store.get(job.id).mlflow["run_id"] == state["run_id"]


def test_a_store_that_cannot_be_written_is_retried_then_failed(store, settings, tmp_path):
    blocked = tmp_path / "not-a-directory"
    blocked.write_text("a file where the store should be")
    broken = settings.model_copy(update={"mlflow_tracking_uri": blocked.as_uri()})
    job = finished(store)
    assert export_job(store, job.id, broken, attempt=1, last_attempt=False) == "retry"
    state = store.get(job.id).mlflow
    assert state["state"] == "retrying" and state["last_error"]
    assert store.mlflow_outbox(0) == [job.id]  # still owed
    assert export_job(store, job.id, broken, attempt=2, last_attempt=True) == "failed"
    record = store.get(job.id)
    assert record.mlflow["state"] == "failed" and record.mlflow["attempts"] == 2
    assert record.status == "succeeded" and record.result is not None  # the job is untouched
    assert store.mlflow_outbox(0) == []


def test_without_mlflow_installed_the_export_fails_once_with_the_fix(store, settings,
                                                                     monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)  # `import` raises ImportError
    job = finished(store)
    assert export_job(store, job.id, settings, attempt=1, last_attempt=False) == "failed"
    assert "pip install mlflow-skinny" in store.get(job.id).mlflow["last_error"]


def test_a_gone_job_is_dropped(store, settings, client):
    job = finished(store)
    store.set_mlflow_state(job.id, {"state": "queued"}, pending=True)
    client.delete(store.job_key(job.id))
    assert export_job(store, job.id, settings, attempt=1, last_attempt=False) == "dropped"
    assert store.mlflow_outbox(0) == []


def test_the_reaper_sends_a_quiet_export_again_once_per_idle_period(store, client, dispatcher,
                                                                    settings):
    job = finished(store)
    store.set_mlflow_state(job.id, {"state": "queued", "attempts": 0}, pending=True)
    reaper = Reaper(store, dispatcher, settings)
    assert reaper.run_once().exports == []  # just queued: on its way
    client.zadd(store.mlflow_outbox_key(), {job.id: time.time() - reaper.export_idle_s() - 1})
    assert reaper.run_once().exports == [job.id]
    assert export_messages(client) == [EXPORT_MLFLOW_TASK]
    assert reaper.run_once().exports == []  # re-armed: not once per pass
    assert store.get(job.id).mlflow["state"] == "queued"
