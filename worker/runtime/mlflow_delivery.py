"""The MLflow export: one finished job logged as an MLflow run, in the notifier.

With ``mlflow_tracking_uri`` set, whoever writes the final status of a job that has a result
(succeeded; timed out or cancelled with partial results; a failed job has none) queues the
export task (``announce_export``; the task is ``worker/runtime/tasks.py``'s, on the
``webhooks`` queue that only the notifier consumes, so a slow or unreachable tracking server
never holds a training process, and the job's status is final before it starts). What is
logged is ``trainability_client/mlflow_export.py``, the mapping the client's
``trainability export`` uses too, fed the same document as the API returns.

The state is kept on the job (``mlflow``: state ``queued`` | ``retrying`` | ``exported`` |
``failed`` | ``skipped``, attempts, run_id, experiment_id, last_error, updated_at) and shown
by ``GET /v1/experiments/{id}``. Failures of the tracking server (network, 5xx, a store that
cannot be written) are retried with the webhooks' backoff; after the last retry the export
is ``failed`` and stays so. Exports are at least once: a queued or retrying export sits in
an outbox and the reaper re-sends one that went quiet (the notifier died); the mapping is
idempotent per experiment, so a second delivery finds the first's run.
"""

from __future__ import annotations

import json
import logging
import os
from typing import Any, Literal, Protocol

from trainability_client.mlflow_export import (
    MlflowNotInstalled,
    NothingToExport,
    log_experiment,
)
from worker.core.errors import JobNotFound
from worker.core.settings import Settings
from worker.jobs.records import JobRecord, utcnow
from worker.jobs.store import JobStore

log = logging.getLogger(__name__)

ExportOutcome = Literal["exported", "retry", "failed", "skipped", "dropped"]


class Sender(Protocol):
    """What queues an export (``worker.jobs.dispatch.CeleryDispatcher``)."""

    def send_mlflow_export(self, job_id: str) -> None: ...


def wants_export(job: JobRecord, settings: Settings) -> bool:
    """An export is due: the setting is on and the final job has a result."""
    return bool(settings.mlflow_tracking_uri) and job.is_final and job.result is not None


def announce_export(store: JobStore, job: JobRecord, settings: Settings,
                    sender: Sender) -> bool:
    """Put the job's export in the outbox and queue it; False when none is due.

    ``TrainabilityError`` (broker down) when it could not be queued: it stays in the outbox
    and the reaper sends it later."""
    if not wants_export(job, settings):
        return False
    state = {"state": "queued", "attempts": 0, "run_id": None, "experiment_id": None,
             "last_error": None, "updated_at": utcnow().isoformat()}
    if store.set_mlflow_state(job.id, state, pending=True):
        sender.send_mlflow_export(job.id)
    return True


def experiment_document(job: JobRecord) -> dict[str, Any]:
    """The job as ``GET /v1/experiments/{id}`` shows it, as far as the mapping reads it."""
    return {
        "id": job.id, "status": job.status, "name": job.name, "tags": list(job.tags),
        "sweep_id": job.sweep_id, "spec": json.loads(job.spec), "result": job.result,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
    }


def _http_limits(settings: Settings) -> None:
    """One bounded request per try: MLflow's client would otherwise wait 120 s per request
    and retry 7 times itself, holding a notifier thread for many minutes. The operator's
    own MLFLOW_HTTP_* variables win."""
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", str(settings.mlflow_timeout_s))
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")


def _permanent(exc: Exception) -> bool:
    """Errors a retry cannot fix: the request itself is refused as invalid."""
    code = getattr(exc, "error_code", None)
    return code in ("INVALID_PARAMETER_VALUE", "BAD_REQUEST")


def export_job(store: JobStore, job_id: str, settings: Settings, *, attempt: int,
               last_attempt: bool) -> ExportOutcome:
    """One export attempt; records the state on the job; says whether to retry."""
    try:
        job = store.get(job_id)
    except JobNotFound:
        log.info("job %s is gone; its MLflow export is dropped", job_id)
        store.set_mlflow_state(job_id, {}, pending=False)  # leaves the outbox
        return "dropped"
    state: dict[str, Any] = {"attempts": attempt, "run_id": None, "experiment_id": None,
                             "last_error": None}

    def record(outcome: ExportOutcome) -> ExportOutcome:
        if outcome == "retry" and last_attempt:
            outcome = "failed"
        state["state"] = {"retry": "retrying"}.get(outcome, outcome)
        state["updated_at"] = utcnow().isoformat()
        if not store.set_mlflow_state(job_id, state, pending=outcome == "retry"):
            return "dropped"
        level = logging.INFO if outcome in ("exported", "skipped") else logging.WARNING
        log.log(level, "MLflow export of job %s: %s (attempt %d, run %s, %s)", job_id,
                state["state"], attempt, state["run_id"], state["last_error"])
        return outcome

    uri = settings.mlflow_tracking_uri
    if not uri:
        state["last_error"] = ("TRAINABILITY_MLFLOW_TRACKING_URI is not set on the worker "
                               "that delivers exports (the notifier)")
        return record("failed")
    _http_limits(settings)
    try:
        run = log_experiment(experiment_document(job), uri, experiment=settings.mlflow_experiment)
    except NothingToExport as exc:
        state["last_error"] = str(exc)
        return record("skipped")
    except MlflowNotInstalled as exc:
        state["last_error"] = f"{exc} (the `mlflow` extra of trainability)"
        return record("failed")
    except Exception as exc:  # the tracking server's or the store's: MlflowException, OSError
        state["last_error"] = f"{type(exc).__name__}: {exc}"[:500]
        return record("failed" if _permanent(exc) else "retry")
    state.update(run_id=run.run_id, experiment_id=run.experiment_id)
    return record("exported")
