"""``/v1/experiments`` over real HTTP against a real Redis (no worker consumes the queues)."""

from __future__ import annotations

import re
from typing import Any

import pytest

PROBLEM = "application/problem+json"


def assert_problem(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["title"] and body["type"]
    assert body["instance"] == response.request.url.path
    return body


# --- submission ----------------------------------------------------------------------------


def test_submit_records_the_job_then_enqueues_its_id(api, broker, spec_doc):
    response = api.post("/v1/experiments", json=spec_doc())

    assert response.status_code == 202, response.text
    body = response.json()
    job_id = body["id"]
    assert re.fullmatch(r"[0-9a-f]{32}", job_id)
    assert body["status"] == "queued"
    assert body["links"]["self"] == f"/v1/experiments/{job_id}"
    assert response.headers["location"] == f"/v1/experiments/{job_id}"
    assert broker.messages("cpu") == [
        {"task": "trainability.run_experiment", "args": [job_id], "kwargs": {},
         "content_type": "application/json"}
    ]

    job = api.get(response.headers["location"]).json()
    assert job["status"] == "queued"
    assert job["attempts"] == 0
    assert job["spec"]["model"]["depth"] == 2
    assert job["spec"]["optimizer"]["momentum"] == 0.9  # the normalized spec, defaults filled
    assert job["result"] is None and job["progress"] is None and job["started_at"] is None
    assert job["created_at"].endswith("Z") or job["created_at"].endswith("+00:00")


@pytest.mark.parametrize(("device", "queue"), [("cpu", "cpu"), ("cuda", "gpu"), ("auto", "cpu")])
def test_the_spec_device_picks_the_queue(api, broker, spec_doc, device, queue):
    doc = spec_doc(training={"steps": 5, "batch_size": 16, "device": device})
    job_id = api.post("/v1/experiments", json=doc).json()["id"]
    assert [m["args"] for m in broker.messages(queue)] == [[job_id]]
    other = "gpu" if queue == "cpu" else "cpu"
    assert broker.queued(other) == 0


# --- bad input: 422 naming the field, nothing written, nothing enqueued -------------------

MLP = {"family": "mlp", "depth": 2, "width": 8}


def _bad_cases() -> list[Any]:
    return [
        pytest.param({"model": {**MLP, "dropout_rate": 0.1}}, "model.dropout_rate",
                     "extra_forbidden", id="unknown-field"),
        pytest.param({"colour": "blue"}, "colour", "extra_forbidden", id="unknown-top-field"),
        pytest.param({"model": {**MLP, "depth": "12"}}, "model.depth", "int_type",
                     id="string-for-int"),
        pytest.param({"model": {**MLP, "depth": 2.5}}, "model.depth", "int_type",
                     id="float-for-int"),
        pytest.param({"model": {**MLP, "depth": 0}}, "model.depth", "greater_than_equal",
                     id="out-of-range"),
        pytest.param({"optimizer": {"lr": -1}}, "optimizer.lr", "greater_than",
                     id="negative-lr"),
        pytest.param({"data": {"kind": "spirals", "arms": 1}}, "data.arms",
                     "greater_than_equal", id="union-member-field"),
        pytest.param({"data": {"kind": "imagenet"}}, "data", "union_tag_invalid",
                     id="unknown-data-kind"),
        pytest.param({"training": {"batch_size": 16}}, "training", "value_error",
                     id="neither-steps-nor-epochs"),
        pytest.param({"spec_version": 2}, "spec_version", "literal_error", id="spec-version"),
    ]


@pytest.mark.parametrize(("change", "field", "error_type"), _bad_cases())
def test_invalid_specs_are_422_naming_the_field(api, broker, spec_doc, change, field,
                                                error_type):
    response = api.post("/v1/experiments", json=spec_doc(**change))

    body = assert_problem(response, 422)
    assert [(e["field"], e["type"], e["in"]) for e in body["errors"]] == [
        (field, error_type, "body")
    ], body["errors"]
    assert field in body["detail"]
    broker.assert_untouched()


def test_missing_section_is_named(api, broker, spec_doc):
    doc = spec_doc()
    del doc["training"]
    body = assert_problem(api.post("/v1/experiments", json=doc), 422)
    assert [(e["field"], e["type"]) for e in body["errors"]] == [("training", "missing")]
    broker.assert_untouched()


@pytest.mark.parametrize("raw", [b'{"spec_version": 1, "model": ', b"not json", b"{'a': 1}"])
def test_malformed_json_is_422(api, broker, raw):
    response = api.post("/v1/experiments", content=raw,
                        headers={"content-type": "application/json"})
    body = assert_problem(response, 422)
    assert [(e["field"], e["type"]) for e in body["errors"]] == [("body", "json_invalid")]
    assert "malformed JSON" in body["errors"][0]["msg"]
    broker.assert_untouched()


def test_a_body_that_is_not_an_object_is_422(api, broker):
    body = assert_problem(api.post("/v1/experiments", json=[1, 2]), 422)
    assert body["errors"][0]["field"] == "body"
    broker.assert_untouched()


def test_over_the_parameter_budget_is_422_naming_the_limit(api, broker, spec_doc):
    doc = spec_doc(model={"family": "mlp", "depth": 100, "width": 2048})
    body = assert_problem(api.post("/v1/experiments", json=doc), 422)

    # 419M parameters: over max_parameters, and so (weights, gradients, momentum) over memory
    error, memory = body["errors"]
    assert error["limit"] == "max_parameters"
    assert error["limit_value"] == 5_000_000
    assert error["value"] > 5_000_000
    assert error["field"] == "model"
    assert error["type"] == "budget-exceeded"
    assert (memory["limit"], memory["type"]) == ("max_memory_bytes", "budget-exceeded")
    assert body["type"].endswith("invalid-spec") and "2 error(s)" in body["detail"]
    broker.assert_untouched()


def test_over_the_steps_x_batch_budget_is_422_naming_the_limit(api, broker, spec_doc):
    doc = spec_doc(training={"steps": 1_000_000, "batch_size": 64, "device": "cpu"})
    body = assert_problem(api.post("/v1/experiments", json=doc), 422)

    (error,) = body["errors"]
    assert (error["limit"], error["limit_value"], error["value"]) == (
        "max_steps_x_batch", 50_000_000, 64_000_000)
    assert error["field"] == "training"
    broker.assert_untouched()


# --- reading --------------------------------------------------------------------------------


@pytest.mark.parametrize("job_id", ["0" * 32, "not-an-id", "A" * 32])
def test_unknown_id_is_404(api, job_id):
    body = assert_problem(api.get(f"/v1/experiments/{job_id}"), 404)
    assert job_id in body["detail"]


def test_unknown_route_and_method_are_problems(api):
    assert_problem(api.get("/v1/nothing-here"), 404)
    response = api.delete("/v1/experiments")
    assert_problem(response, 405)
    assert "allow" in response.headers


def test_final_job_shows_its_result(api, api_server, spec_doc, result_doc):
    store = api_server.app.state.store
    job_id = api.post("/v1/experiments", json=spec_doc()).json()["id"]
    record = store.start(job_id, worker="w1")
    store.update_progress(job_id, {"step": 3, "total_steps": 5}, attempt=record.attempts)

    running = api.get(f"/v1/experiments/{job_id}").json()
    assert (running["status"], running["attempts"]) == ("running", 1)
    assert running["progress"] == {"step": 3, "total_steps": 5}
    assert running["result"] is None

    store.finish(job_id, "succeeded", attempt=1, result=result_doc())
    done = api.get(f"/v1/experiments/{job_id}").json()
    assert done["status"] == "succeeded"
    assert done["result"]["summary"] == result_doc()["summary"]
    assert done["result"]["findings"] == []
    assert done["finished_at"] is not None


def test_a_stored_result_the_schema_cannot_describe_leaves_the_job_readable(
    api, api_server, spec_doc
):
    store = api_server.app.state.store
    job_id = api.post("/v1/experiments", json=spec_doc()).json()["id"]
    store.start(job_id, worker="w1")
    store.finish(job_id, "succeeded", attempt=1, result={"summary": {"outcome": "completed"}})

    response = api.get(f"/v1/experiments/{job_id}")
    assert response.status_code == 200, response.text
    done = response.json()
    assert done["status"] == "succeeded" and done["result"] is None
    assert "result schema" in done["error"]


# --- listing --------------------------------------------------------------------------------


def test_list_pages_newest_first_without_gaps_or_repeats(api, spec_doc):
    created = [api.post("/v1/experiments", json=spec_doc()).json()["id"] for _ in range(7)]

    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/experiments", params=params).json()
        pages += 1
        assert len(page["data"]) <= 3
        seen += [job["id"] for job in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == 3
    assert seen == list(reversed(created))
    assert page["data"][-1]["links"]["self"] == f"/v1/experiments/{created[0]}"


def test_list_filters_by_status(api, api_server, spec_doc):
    store = api_server.app.state.store
    ids = [api.post("/v1/experiments", json=spec_doc()).json()["id"] for _ in range(4)]
    for job_id in ids[:2]:
        store.start(job_id, worker="w1")
        store.finish(job_id, "succeeded", result={})
    store.start(ids[2], worker="w1")

    def listed(status):
        page = api.get("/v1/experiments", params={"status": status}).json()
        return [job["id"] for job in page["data"]]

    assert listed("succeeded") == [ids[1], ids[0]]
    assert listed("running") == [ids[2]]
    assert listed("queued") == [ids[3]]
    assert listed("failed") == []


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "done"}, "status"),
    ({"limit": 0}, "limit"),
    ({"limit": 101}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"cursor": "garbage!"}, "cursor"),
    ({"cursor": "WzEsICJ4Il0"}, "cursor"),  # base64 of [1, "x"]: well-formed, not ours
])
def test_bad_list_parameters_are_422(api, params, field):
    body = assert_problem(api.get("/v1/experiments", params=params), 422)
    assert [(e["field"], e["in"]) for e in body["errors"]] == [(field, "query")]
