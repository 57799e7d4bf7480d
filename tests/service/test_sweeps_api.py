"""``/v1/sweeps`` over real HTTP and a real Redis, no worker: what is written and enqueued,
what is refused (every bad point listed), the table, cancel and re-run."""

from __future__ import annotations

import json

import pytest

from worker.core.settings import Settings
from worker.jobs.redis_store import store_from_settings


def sweep_body(spec_doc, **extra):
    body = {
        "name": "act x depth",
        "base": spec_doc(),
        "axes": {"model.depth": [2, 4]},
        "variants": {
            "sigmoid": {"model.activation": "sigmoid"},
            "relu+residual": {"model.activation": "relu", "model.residual": True},
        },
    }
    body.update(extra)
    return body


def test_a_sweep_records_every_job_with_its_sweep_id_then_enqueues_them(api, broker, spec_doc):
    response = api.post("/v1/sweeps", json=sweep_body(spec_doc))
    assert response.status_code == 202, response.text
    accepted = response.json()
    assert accepted["points"] == 4 and len(accepted["job_ids"]) == 4
    assert response.headers["location"] == f"/v1/sweeps/{accepted['id']}"
    # kombu LPUSHes and workers pop from the right: the list holds the newest first
    queued = [m["args"] for m in broker.messages("cpu")][::-1]
    assert queued == [[j] for j in accepted["job_ids"]]
    for job_id in accepted["job_ids"]:
        raw = broker.client.hgetall(f"trainability:job:{job_id}")
        assert raw["sweep_id"] == accepted["id"] and raw["status"] == "queued"
    job = api.get(f"/v1/experiments/{accepted['job_ids'][3]}").json()
    assert job["spec"]["model"]["activation"] == "relu"
    assert job["spec"]["model"]["residual"] is True and job["spec"]["model"]["depth"] == 4
    assert job["name"] == "small [variant=relu+residual, model.depth=4]"


def test_points_that_differ_in_seed_lr_momentum_or_gain_are_sent_as_cohorts(api, broker,
                                                                              spec_doc):
    base = {**spec_doc(), "init": {"scheme": "normal"}}
    response = api.post("/v1/sweeps", json={
        "base": base, "axes": {"model.depth": [2, 3], "optimizer.lr": [0.01, 0.1],
                               "init.gain": [0.5, 1.0]}})
    assert response.status_code == 202, response.text
    jobs = response.json()["job_ids"]  # depth varies slowest: points 0-3 depth 2, 4-7 depth 3
    sent = {m["args"][0]: m["kwargs"].get("cohort") for m in broker.messages("cpu")}
    assert sent == {**dict.fromkeys(jobs[:4], jobs[:4]), **dict.fromkeys(jobs[4:], jobs[4:])}
    assert response.json()["cohorts"] == [jobs[:4], jobs[4:]]
    # a point of a design of its own goes alone (no cohort in its message)
    response = api.post("/v1/sweeps", json={"base": base, "axes": {"model.depth": [2, 3]}})
    assert response.status_code == 202
    alone = response.json()["job_ids"]
    assert response.json()["cohorts"] == []
    sent = {m["args"][0]: m["kwargs"] for m in broker.messages("cpu")}
    assert [sent[j] for j in alone] == [{}, {}]


def test_the_sweep_shows_progress_and_one_row_per_point(api, spec_doc):
    accepted = api.post("/v1/sweeps", json=sweep_body(spec_doc)).json()
    sweep = api.get(f"/v1/sweeps/{accepted['id']}").json()
    assert sweep["progress"] == {
        "total": 4, "final": 0, "done": False,
        "by_status": {"queued": 4, "running": 0, "succeeded": 0, "failed": 0, "cancelled": 0,
                      "timed_out": 0},
    }
    assert [r["values"] for r in sweep["table"]] == [
        {"variant": "sigmoid", "model.depth": 2}, {"variant": "sigmoid", "model.depth": 4},
        {"variant": "relu+residual", "model.depth": 2},
        {"variant": "relu+residual", "model.depth": 4},
    ]
    assert sweep["columns"][:2] == ["variant", "model.depth"]
    assert all(r["status"] == "queued" and r["grad_ratio_init"] is None for r in sweep["table"])
    desc = api.get(f"/v1/sweeps/{accepted['id']}", params={"sort": "model.depth",
                                                           "order": "desc"}).json()
    assert [r["point"] for r in desc["table"]] == [1, 3, 0, 2]
    bad = api.get(f"/v1/sweeps/{accepted['id']}", params={"sort": "nope"})
    assert bad.status_code == 422 and "model.depth" in bad.json()["detail"]


def test_zip_mode_pairs_values(api, spec_doc):
    body = {"base": spec_doc(), "mode": "zip",
            "axes": {"model.depth": [2, 3], "model.width": [4, 8]}}
    accepted = api.post("/v1/sweeps", json=body).json()
    sweep = api.get(f"/v1/sweeps/{accepted['id']}").json()
    assert [r["values"] for r in sweep["table"]] == [
        {"model.depth": 2, "model.width": 4}, {"model.depth": 3, "model.width": 8}]
    unequal = api.post("/v1/sweeps", json={**body, "axes": {"model.depth": [2, 3],
                                                             "model.width": [4]}})
    assert unequal.status_code == 422


def test_every_bad_point_is_listed_and_nothing_is_written(api, broker, spec_doc):
    body = {"base": spec_doc(), "axes": {"model.depth": [2, 0, 3],
                                         "model.activation": ["relu", "nope"]}}
    response = api.post("/v1/sweeps", json=body)
    assert response.status_code == 422
    problem = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    bad = {(e["point"], e["field"]) for e in problem["errors"]}
    # points: (2,relu) (2,nope) (0,relu) (0,nope) (3,relu) (3,nope)
    assert bad == {(1, "points.1.model.activation"), (2, "points.2.model.depth"),
                   (3, "points.3.model.depth"), (3, "points.3.model.activation"),
                   (5, "points.5.model.activation")}
    assert next(e for e in problem["errors"] if e["point"] == 1)["values"] == {
        "model.depth": 2, "model.activation": "nope"}
    broker.assert_untouched()


def test_a_point_over_budget_names_the_limit(api, broker, spec_doc):
    body = {"base": spec_doc(), "axes": {"model.width": [8, 4096]}}
    response = api.post("/v1/sweeps", json=body)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["point"] == 1 and error["limit"] == "max_parameters"
    broker.assert_untouched()


def test_too_many_points_names_the_setting(api, broker, spec_doc):
    body = {"base": spec_doc(), "axes": {"training.seed": list(range(9)),
                                         "model.width": list(range(4, 12))}}
    response = api.post("/v1/sweeps", json=body)
    assert response.status_code == 422
    problem = response.json()
    assert "max_sweep_points" in problem["detail"] and "72" in problem["detail"]
    assert problem["errors"][0]["limit"] == "max_sweep_points"
    broker.assert_untouched()


@pytest.mark.parametrize("body, field", [
    ({"axes": {"model..depth": [2]}}, "points.0"),
    ({"axes": {"model.depth.x": [2]}}, "points.0"),
    ({"axes": {}}, "axes"),
])
def test_bad_paths_and_empty_sweeps_are_refused(api, spec_doc, body, field):
    response = api.post("/v1/sweeps", json={"base": spec_doc(), **body})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == field


def test_an_invalid_base_is_refused_with_its_path(api, spec_doc):
    base = spec_doc(model={"family": "mlp", "depth": 2, "width": 8, "activation": "nope"})
    response = api.post("/v1/sweeps", json={"base": base, "axes": {"model.depth": [2]}})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "base.model.activation"


def test_cancel_ends_the_queued_points_and_rerun_makes_new_jobs(api, spec_doc, redis_server):
    accepted = api.post("/v1/sweeps", json=sweep_body(spec_doc)).json()
    sweep_id, jobs = accepted["id"], accepted["job_ids"]
    store = store_from_settings(Settings(redis_url=redis_server.url(2)))
    store.start(jobs[0], worker="w")
    store.finish(jobs[0], "succeeded", attempt=1, result={"summary": {"outcome": "completed"}})
    cancelled = api.post(f"/v1/sweeps/{sweep_id}/cancel").json()
    assert cancelled == {"id": sweep_id, "cancelled": jobs[1:], "already_final": 1}
    sweep = api.get(f"/v1/sweeps/{sweep_id}").json()
    assert sweep["progress"]["by_status"]["cancelled"] == 3 and sweep["progress"]["done"]
    assert sweep["table"][0]["outcome"] == "completed"

    rerun = api.post(f"/v1/sweeps/{sweep_id}/rerun")
    assert rerun.status_code == 202, rerun.text
    points = rerun.json()["rerun"]
    assert [p["point"] for p in points] == [1, 2, 3]
    assert [p["previous_job_id"] for p in points] == jobs[1:]
    sweep = api.get(f"/v1/sweeps/{sweep_id}").json()
    assert [r["job_id"] for r in sweep["table"]][1:] == [p["job_id"] for p in points]
    assert [r["previous_job_ids"] for r in sweep["table"]] == [[], *([j] for j in jobs[1:])]
    assert sweep["progress"]["by_status"]["queued"] == 3
    nothing = api.post(f"/v1/sweeps/{sweep_id}/rerun", json={"statuses": ["failed"]}).json()
    assert nothing["rerun"] == []


def test_sweeps_are_listed_newest_first_page_by_page(api, spec_doc):
    ids = [api.post("/v1/sweeps", json={"base": spec_doc(), "axes": {"training.seed": [i]}})
           .json()["id"] for i in range(3)]
    first = api.get("/v1/sweeps", params={"limit": 2}).json()
    assert [s["id"] for s in first["data"]] == ids[::-1][:2]
    second = api.get("/v1/sweeps", params={"limit": 2, "cursor": first["next_cursor"]}).json()
    assert [s["id"] for s in second["data"]] == ids[:1] and second["next_cursor"] is None
    assert first["data"][0]["varied"] == ["training.seed"]
    bad = api.get("/v1/sweeps", params={"cursor": "zzz"})
    assert bad.status_code == 422


def test_unknown_sweeps_are_404(api):
    for path in ("/v1/sweeps/nope", f"/v1/sweeps/{'0' * 32}", f"/v1/sweeps/{'0' * 32}/report"):
        response = api.get(path)
        assert response.status_code == 404, path
        assert response.json()["title"] == "Sweep not found"
    assert api.post(f"/v1/sweeps/{'0' * 32}/cancel").status_code == 404


def test_sweeps_answer_503_when_redis_is_down(api_without_redis, spec_doc):
    with api_without_redis.client() as client:
        response = client.post("/v1/sweeps", json={"base": spec_doc(),
                                                   "axes": {"model.depth": [2]}})
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"
        assert client.get(f"/v1/sweeps/{'0' * 32}").status_code == 503


def test_the_body_is_kept_as_given(api, spec_doc):
    accepted = api.post("/v1/sweeps", json=sweep_body(spec_doc)).json()
    sweep = api.get(f"/v1/sweeps/{accepted['id']}").json()
    assert sweep["base"] == json.loads(json.dumps(spec_doc()))
    assert sweep["variants"]["relu+residual"] == {"model.activation": "relu",
                                                  "model.residual": True}


def test_with_auth_a_sweep_and_its_jobs_belong_to_the_key(server_with, spec_doc,
                                                          redis_server):
    import hashlib

    import httpx

    from trainability_client import Client, NotFound, Unauthorized

    redis_server.client(2).flushdb()
    keys = [{"name": n, "sha256": hashlib.sha256(f"secret-{n}".encode()).hexdigest()}
            for n in ("alice", "bob")]
    with server_with(auth_enabled=True, api_keys=keys) as server:
        with Client(server.url, api_key="secret-alice") as alice, \
                Client(server.url, api_key="secret-bob") as bob:
            accepted = alice.create_sweep(spec_doc(), {"model.depth": [2, 3]})
            assert alice.get(accepted.job_ids[0]).raw.get("sweep_id") == accepted.id
            assert [s["id"] for s in alice.list_sweeps()] == [accepted.id]
            assert list(bob.list_sweeps()) == []
            for call in (lambda: bob.sweep(accepted.id), lambda: bob.cancel_sweep(accepted.id),
                         lambda: bob.sweep_report(accepted.id),
                         lambda: bob.get(accepted.job_ids[0])):
                with pytest.raises(NotFound):
                    call()
            assert alice.cancel_sweep(accepted.id)["cancelled"] == accepted.job_ids
        with Client(server.url, api_key="wrong") as nobody, pytest.raises(Unauthorized):
            nobody.sweep(accepted.id)
        assert httpx.get(f"{server.url}/v1/sweeps").status_code == 401
