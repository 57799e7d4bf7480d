"""Liveness, readiness, and what clients see when Redis is down (503, never 500)."""

from __future__ import annotations

import pytest

from worker.jobs.registry import registry_from_settings

PROBLEM = "application/problem+json"


def test_healthz_is_always_ok(api):
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_needs_a_worker(api, api_server):
    response = api.get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == PROBLEM
    assert "worker" in response.json()["detail"]
    assert int(response.headers["retry-after"]) > 0

    registry = registry_from_settings(api_server.app.state.settings)
    registry.beat("w1@test", ["cpu", "gpu"], pid=1)
    ready = api.get("/readyz")
    assert ready.status_code == 200
    # a summary: which workers and queues is for operator keys (tests/service/test_probes.py)
    assert ready.json() == {"status": "ready", "redis": "ok", "workers": 1}

    registry.leave("w1@test")
    assert api.get("/readyz").status_code == 503


def _spec() -> dict[str, object]:
    return {
        "spec_version": 1,
        "model": {"depth": 2, "width": 8},
        "data": {"kind": "spirals"},
        "training": {"steps": 5},
    }


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/experiments", _spec()),
    ("GET", "/v1/experiments/" + "a" * 32, None),
    ("GET", "/v1/experiments", None),
    ("GET", "/readyz", None),
])
def test_redis_down_is_503_with_retry_after(api_without_redis, method, path, body):
    with api_without_redis.client() as client:
        response = client.request(method, path, json=body)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "7"
    problem = response.json()
    assert problem["status"] == 503
    assert "unavailable" in problem["type"] or "not-ready" in problem["type"]


def test_liveness_does_not_need_redis(api_without_redis):
    with api_without_redis.client() as client:
        assert client.get("/healthz").status_code == 200


def test_bad_input_is_422_even_when_redis_is_down(api_without_redis):
    with api_without_redis.client() as client:
        response = client.post("/v1/experiments", json={**_spec(), "extra": 1})
    assert response.status_code == 422
