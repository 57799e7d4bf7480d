"""Result size: what a worker stores is bounded, and a client can ask for part of it.

Found on main: a result had no size limit (``diagnostics.every: 1`` gave 2,040 probes and a
6.9 MB document, returned whole on every poll). Now the job store fits a result into
``max_result_bytes`` before writing it (decimated, with a note, never lost:
``worker/jobs/result_size.py``), and ``GET /v1/experiments/{id}?fields=summary,findings``
returns only those parts. (The probe cap: ``tests/worker/core/test_probe_schedule.py``.)
"""

from __future__ import annotations

import json
from typing import Any

from worker.core.settings import Settings
from worker.jobs.redis_store import RedisJobStore, store_from_settings
from worker.jobs.result_size import size_of

LIMIT = 64 << 10  # the smallest max_result_bytes the settings allow
POINTS = 20_000
FINDING = {"code": "example", "severity": "info", "message": "kept whole",
           "evidence": {"value": 1.0}, "suggestion": "none"}


def large(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with curves of ``POINTS`` points: about 0.9 MB as compact JSON."""
    steps = list(range(POINTS))
    evals = steps[::4]
    return {**result, "curves": {
        "step": steps, "train_loss": [1 / (1 + s) for s in steps], "eval_step": evals,
        "train_eval_loss": [1 / (1 + s) for s in evals],
        "val_loss": [1.5 / (1 + s) for s in evals], "train_accuracy": [], "val_accuracy": []},
        "findings": [FINDING]}


def finished(store: RedisJobStore, result: dict[str, Any]) -> str:
    job = store.create(json.dumps({"spec_version": 1}), name=None, queue="cpu")
    store.start(job.id, worker="w")
    store.finish(job.id, "succeeded", attempt=1, result=result)
    return job.id


def test_hardening_5_a_result_over_max_result_bytes_is_stored_cut_with_a_note(
        api, api_server, result_doc):
    """Hardening item 5: a 0.9 MB result is stored within max_result_bytes, never lost."""
    # the job store as a worker builds it (worker/runtime/tasks.py: store_from_settings)
    settings = Settings(redis_url=api_server.app.state.settings.redis_url,
                        max_result_bytes=LIMIT)
    original = large(result_doc())
    assert size_of(original) > 10 * LIMIT
    job_id = finished(store_from_settings(settings), original)

    stored = json.loads(api_server.app.state.store.client.hget(
        api_server.app.state.store.job_key(job_id), "result"))
    assert size_of(stored) <= LIMIT
    note = stored["truncated"]
    assert note["original_bytes"] == size_of(original) and note["max_result_bytes"] == LIMIT
    assert "max_result_bytes" in note["note"]
    # the verdict and what it rests on are whole; the curves keep both ends, in step
    assert stored["summary"] == original["summary"]
    assert stored["findings"] == original["findings"]
    curves = stored["curves"]
    assert curves["step"][0] == 0 and curves["step"][-1] == POINTS - 1
    assert len(curves["step"]) == len(curves["train_loss"]) < POINTS
    assert curves["train_loss"][-1] == original["curves"]["train_loss"][-1]

    served = api.get(f"/v1/experiments/{job_id}")  # and the API serves it as a result
    assert served.status_code == 200, served.text
    assert served.json()["result"]["truncated"]["lists_kept_at_most"] == note[
        "lists_kept_at_most"]


def test_hardening_5_fields_returns_only_the_parts_asked_for(api, api_server, result_doc):
    """Hardening item 5: ?fields=summary,findings answers without curves and the rest."""
    job_id = finished(api_server.app.state.store, large(result_doc()))

    whole = api.get(f"/v1/experiments/{job_id}")
    part = api.get(f"/v1/experiments/{job_id}", params={"fields": "summary,findings"})
    assert part.status_code == 200
    result = part.json()["result"]
    assert {k for k, v in result.items() if v is not None} == {"summary", "findings"}
    assert result["summary"] == whole.json()["result"]["summary"]
    assert len(part.content) < len(whole.content) / 20
    assert part.json()["status"] == "succeeded"  # the job itself is all there

    refused = api.get(f"/v1/experiments/{job_id}", params={"fields": "summary,nope"})
    assert refused.status_code == 422
    assert refused.json()["errors"][0]["field"].endswith("fields")


def test_fields_of_a_result_this_server_cannot_describe_is_not_a_500(api, api_server,
                                                                      result_doc):
    """Hardening item 5: ?fields= on a stored result of another schema keeps the job
    readable (as the whole GET does), never a 500."""
    foreign = {**result_doc(), "findings": [{"rule": "from another version"}]}
    job_id = finished(api_server.app.state.store, foreign)
    for params in ({}, {"fields": "summary,findings"}):
        response = api.get(f"/v1/experiments/{job_id}", params=params)
        assert response.status_code == 200, (params, response.text)
        body = response.json()
        assert body["status"] == "succeeded" and body["result"] is None
        assert "does not match" in body["error"]
