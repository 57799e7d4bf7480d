"""Tags on experiments and sweeps, and ``GET /v1/experiments`` filters, on a real API and Redis:
tags validated (count, length, charset) and kept out of the spec; a sweep's jobs carry its
tags, re-runs too; ``status``, ``tag``, ``sweep`` and ``created_after`` combine over the cursor
pages without gaps or repeats; a bad value is a 422 naming the query parameter."""

from __future__ import annotations

import time
from typing import Any

import pytest

PROBLEM = "application/problem+json"


def submit(api, spec_doc, **extra) -> dict[str, Any]:
    response = api.post("/v1/experiments", json={**spec_doc(), **extra})
    assert response.status_code == 202, response.text
    body: dict[str, Any] = response.json()
    return body


def listed(api, **params) -> list[dict[str, Any]]:
    """Every page of a listing (limit 2), checking each page's size."""
    out, cursor = [], None
    while True:
        query = {**params, "limit": 2, **({"cursor": cursor} if cursor else {})}
        response = api.get("/v1/experiments", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["data"]) <= 2
        out += page["data"]
        cursor = page["next_cursor"]
        if cursor is None:
            return out


def test_tags_are_stored_on_the_job_not_in_the_spec(api, spec_doc):
    job_id = submit(api, spec_doc, tags=["team:vision", "baseline", "team:vision"])["id"]
    job = api.get(f"/v1/experiments/{job_id}").json()
    assert job["tags"] == ["team:vision", "baseline"]
    assert "tags" not in job["spec"]
    (row,) = api.get("/v1/experiments").json()["data"]
    assert row["tags"] == ["team:vision", "baseline"] and row["sweep_id"] is None


@pytest.mark.parametrize(("tags", "field"), [
    (["ok", "has space"], "tags.1"), (["*"], "tags.0"), ([""], "tags.0"), (["x" * 41], "tags.0"),
    ([f"t{i}" for i in range(17)], "tags"), ("solo", "tags"),
])
def test_bad_tags_are_422_naming_the_tag(api, broker, spec_doc, tags, field):
    response = api.post("/v1/experiments", json={**spec_doc(), "tags": tags})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    assert [e["field"] for e in response.json()["errors"]] == [field]
    broker.assert_untouched()


def test_filters_combine_over_pages(api, spec_doc):
    ids = {}
    for n, tags in enumerate([["a"], ["a", "b"], ["b"], [], ["a"], ["a", "b"]]):
        ids[n] = submit(api, spec_doc, name=f"job {n}", tags=tags)["id"]
    for n in (1, 4):
        assert api.post(f"/v1/experiments/{ids[n]}/cancel").status_code == 202
    newest_first = [ids[n] for n in range(5, -1, -1)]

    def expect(*numbers: int) -> list[str]:
        return [i for i in newest_first if i in {ids[n] for n in numbers}]

    assert [j["id"] for j in listed(api)] == newest_first
    assert [j["id"] for j in listed(api, tag="a")] == expect(0, 1, 4, 5)
    assert [j["id"] for j in listed(api, tag=["a", "b"])] == expect(1, 5)
    assert [j["id"] for j in listed(api, tag="a", status="cancelled")] == expect(1, 4)
    assert [j["id"] for j in listed(api, tag="b", status="queued")] == expect(2, 5)
    assert listed(api, tag="nobody") == []


def test_created_after_is_strict(api, spec_doc):
    first = submit(api, spec_doc)["id"]
    time.sleep(0.01)
    second = submit(api, spec_doc, tags=["x"])["id"]
    third = submit(api, spec_doc)["id"]
    created = api.get(f"/v1/experiments/{first}").json()["created_at"]
    assert [j["id"] for j in listed(api, created_after=created)] == [third, second]
    assert [j["id"] for j in listed(api, created_after=created, tag="x")] == [second]
    naive = created[:26]  # the same instant without its offset: read as UTC
    assert [j["id"] for j in listed(api, created_after=naive)] == [third, second]


SWEEP = {"name": "tagged", "axes": {"model.depth": [1, 2, 3]}, "tags": ["sweep-tag", "v1"]}


def test_a_sweeps_jobs_carry_its_tags_and_list_by_sweep(api, spec_doc):
    other = submit(api, spec_doc, tags=["sweep-tag"])["id"]
    response = api.post("/v1/sweeps", json={**SWEEP, "base": spec_doc()})
    assert response.status_code == 202, response.text
    sweep = response.json()
    assert api.get(f"/v1/sweeps/{sweep['id']}").json()["tags"] == ["sweep-tag", "v1"]
    for job_id in sweep["job_ids"]:
        job = api.get(f"/v1/experiments/{job_id}").json()
        assert (job["tags"], job["sweep_id"]) == (["sweep-tag", "v1"], sweep["id"])
    in_sweep = listed(api, sweep=sweep["id"])
    assert [j["id"] for j in in_sweep] == list(reversed(sweep["job_ids"]))
    assert {j["id"] for j in listed(api, tag="sweep-tag")} == {other, *sweep["job_ids"]}

    # a re-run's new job keeps the sweep's tags and shows in its listing
    api.post(f"/v1/experiments/{sweep['job_ids'][0]}/cancel")
    rerun = api.post(f"/v1/sweeps/{sweep['id']}/rerun", json={"statuses": ["cancelled"]})
    assert rerun.status_code == 202, rerun.text
    (point,) = rerun.json()["rerun"]
    assert api.get(f"/v1/experiments/{point['job_id']}").json()["tags"] == ["sweep-tag", "v1"]
    assert listed(api, sweep=sweep["id"])[0]["id"] == point["job_id"]
    assert [j["id"] for j in listed(api, sweep=sweep["id"], status="cancelled")] == [
        sweep["job_ids"][0]]


def test_bad_sweep_tags_are_422(api, broker, spec_doc):
    response = api.post("/v1/sweeps", json={**SWEEP, "base": spec_doc(), "tags": ["no spaces"]})
    assert response.status_code == 422
    assert [e["field"] for e in response.json()["errors"]] == ["tags.0"]
    broker.assert_untouched()


@pytest.mark.parametrize(("params", "field"), [
    ({"status": "done"}, "status"),
    ({"tag": "has space"}, "tag.0"),
    ({"sweep": "not-a-sweep-id"}, "sweep"),
    ({"created_after": "yesterday"}, "created_after"),
    ({"cursor": "!!"}, "cursor"),
    ({"limit": 0}, "limit"),
])
def test_bad_filter_values_are_422_naming_the_parameter(api, params, field):
    response = api.get("/v1/experiments", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    (error,) = response.json()["errors"]
    assert (error["field"], error["in"]) == (field, "query")
