"""API keys on a real API and Redis: 401 without a known key, per-key isolation (another key's
job is a 404 on every route, listing included), the per-key limit (429), settings refusals."""

from __future__ import annotations

import hashlib

import pytest
from pydantic import ValidationError

from service.settings import ServiceSettings
from tests.conftest import LiveServer, make_settings

DB = 15
ALICE, BOB = "alice-key-8c1f0e", "bob-key-77d2a4"
PROBLEM = "application/problem+json"


def sha(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


SPEC = {
    "spec_version": 1,
    "model": {"family": "mlp", "depth": 2, "width": 8},
    "data": {"kind": "spirals", "n_train": 64, "n_val": 16},
    "training": {"steps": 5, "batch_size": 16, "device": "cpu"},
}


@pytest.fixture(scope="module")
def server(redis_server):
    settings = make_settings(redis_server, DB, auth_enabled=True, api_keys=[
        {"name": "alice", "sha256": sha(ALICE), "max_queued": 2},
        {"name": "bob", "sha256": sha(BOB)},
    ])
    with LiveServer(settings) as live:
        yield live


@pytest.fixture
def http(server, redis_server):
    redis_server.client(DB).flushdb()
    with server.client() as client:
        yield client


def as_(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.mark.parametrize(("headers", "invalid"), [
    ({}, False),
    ({"Authorization": "Basic YWxpY2U6eA=="}, False),
    ({"Authorization": "Bearer"}, False),
    ({"Authorization": "Bearer not-a-key"}, True),
])
@pytest.mark.parametrize(("method", "path"), [
    ("POST", "/v1/experiments"), ("GET", "/v1/experiments"),
    ("GET", "/v1/experiments/" + "a" * 32), ("GET", "/v1/catalog"),
])
def test_a_missing_or_wrong_key_is_401(http, headers, invalid, method, path):
    response = http.request(method, path, headers=headers,
                            json=SPEC if method == "POST" else None)
    assert response.status_code == 401
    assert response.headers["content-type"] == PROBLEM
    challenge = response.headers["www-authenticate"]
    assert challenge.startswith('Bearer realm="trainability"')
    assert ('error="invalid_token"' in challenge) is invalid


def test_probes_stay_open(http):
    assert http.get("/healthz").status_code == 200
    assert http.get("/metrics").status_code == 200


def test_another_keys_jobs_are_404_everywhere(http, server):
    job_id = http.post("/v1/experiments", json=SPEC, headers=as_(ALICE)).json()["id"]
    assert http.get(f"/v1/experiments/{job_id}", headers=as_(ALICE)).status_code == 200

    for method, suffix in [("GET", ""), ("POST", "/cancel"), ("DELETE", ""),
                           ("GET", "/events"), ("GET", "/report"),
                           ("GET", "/plots/loss.svg")]:
        response = http.request(method, f"/v1/experiments/{job_id}{suffix}", headers=as_(BOB))
        assert response.status_code == 404, (method, suffix, response.text)
        assert response.json()["detail"] == f"no experiment with id {job_id!r}"

    assert http.get("/v1/experiments", headers=as_(BOB)).json()["data"] == []
    listed = http.get("/v1/experiments", headers=as_(ALICE)).json()["data"]
    assert [j["id"] for j in listed] == [job_id]
    # and the job is untouched by bob's attempts
    assert http.get(f"/v1/experiments/{job_id}", headers=as_(ALICE)).json()["status"] == "queued"
    assert server.app.state.store.get(job_id).owner == "alice"


def test_idempotency_keys_are_per_api_key(http):
    headers = {"Idempotency-Key": "same"}
    a = http.post("/v1/experiments", json=SPEC, headers={**headers, **as_(ALICE)}).json()["id"]
    b = http.post("/v1/experiments", json=SPEC, headers={**headers, **as_(BOB)}).json()["id"]
    assert a != b


def test_a_key_over_its_limit_gets_429_until_a_job_ends(http):
    ids = [http.post("/v1/experiments", json=SPEC, headers=as_(ALICE)).json()["id"]
           for _ in range(2)]
    refused = http.post("/v1/experiments", json=SPEC, headers=as_(ALICE))
    assert refused.status_code == 429
    assert refused.headers["content-type"] == PROBLEM
    assert int(refused.headers["retry-after"]) > 0
    assert "limit" in refused.json()["detail"]
    # bob has no limit; alice's slots free up when a job ends
    assert http.post("/v1/experiments", json=SPEC, headers=as_(BOB)).status_code == 202
    http.post(f"/v1/experiments/{ids[0]}/cancel", headers=as_(ALICE))
    assert http.post("/v1/experiments", json=SPEC, headers=as_(ALICE)).status_code == 202


def test_settings_refuse_placeholders_outside_development(redis_server):
    with pytest.raises(ValidationError, match="TRAINABILITY_API_KEYS is empty"):
        ServiceSettings(environment="production", auth_enabled=True)
    with pytest.raises(ValidationError, match="placeholder key"):
        ServiceSettings(environment="production", auth_enabled=True,
                        api_keys=[{"name": "ops", "sha256": sha("change-me")}])
    with pytest.raises(ValidationError, match="webhook_secret is a placeholder"):
        ServiceSettings(environment="production", webhook_allowlist=["*"])
    with pytest.raises(ValidationError, match="unique"):
        ServiceSettings(api_keys=[{"name": "a", "sha256": sha("x")},
                                  {"name": "a", "sha256": sha("y")}])
    ok = ServiceSettings(environment="production", auth_enabled=True,
                         api_keys=[{"name": "ops", "sha256": sha(ALICE).upper()}],
                         webhook_allowlist=["*"], webhook_secret="a-real-secret-9f8e")
    assert ok.api_keys[0].sha256 == sha(ALICE)
    assert ServiceSettings().auth_enabled is False  # off by default, for local use
