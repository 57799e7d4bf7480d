"""The lifecycle routes on a real API and Redis (no worker; the tests play the worker through
the job store): cancel, delete, Idempotency-Key, callback_url, server-sent events, /metrics,
hostile bodies, and 503 (never 500) on every route when Redis is down."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from tests.conftest import LiveServer, make_settings
from worker.jobs.redis_store import RedisJobStore

DB = 13
PROBLEM = "application/problem+json"


OPERATOR_KEY = "lifecycle-operator-key"
OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}


@pytest.fixture(scope="module")
def server(redis_server):
    settings = make_settings(redis_server, DB, webhook_allowlist=["127.0.0.1", "*.example.com"],
                             sse_heartbeat_s=0.2, sse_poll_s=0.5, max_request_bytes=50_000,
                             api_keys=[{"name": "ops", "operator": True,
                                        "sha256": hashlib.sha256(OPERATOR_KEY.encode())
                                        .hexdigest()}])
    with LiveServer(settings) as live:
        yield live


@pytest.fixture
def client(server, redis_server):
    redis_server.client(DB).flushdb()
    with server.client() as http:
        yield http


@pytest.fixture
def store(server) -> RedisJobStore:
    store: RedisJobStore = server.app.state.store
    return store


@pytest.fixture
def broker(redis_server):
    return redis_server.client(DB)


def spec(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "spec_version": 1,
        "model": {"family": "mlp", "depth": 2, "width": 8},
        "data": {"kind": "spirals", "n_train": 64, "n_val": 16},
        "training": {"steps": 5, "batch_size": 16, "device": "cpu"},
    }
    doc.update(overrides)
    return doc


def submit(client, **overrides) -> str:
    response = client.post("/v1/experiments", json=spec(**overrides))
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


def play_worker(store, job_id, attempt_holder="w@h|1"):
    claim = store.claim(job_id, worker="w@h", holder=attempt_holder, lease_ttl_s=30,
                        max_attempts=3)
    assert claim.outcome == "started"
    return claim.attempt


# --- cancel and delete -----------------------------------------------------------------------


def test_cancel_a_queued_job(client, store):
    job_id = submit(client)
    response = client.post(f"/v1/experiments/{job_id}/cancel")
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "cancelled" and body["cancel_requested"]
    assert body["error"] == "cancelled before it started"
    # the task is still in the broker; when it arrives it finds the job final
    assert store.claim(job_id, worker="w", holder="w|1", lease_ttl_s=30,
                       max_attempts=3).outcome == "final"


def test_cancel_a_running_job_flags_it(client, store):
    job_id = submit(client)
    play_worker(store, job_id)
    body = client.post(f"/v1/experiments/{job_id}/cancel").json()
    assert body["status"] == "running" and body["cancel_requested"]
    assert client.post(f"/v1/experiments/{job_id}/cancel").status_code == 202  # idempotent
    assert store.renew_lease(job_id, attempt=1, lease="w@h|1|1", lease_ttl_s=30) == "cancel"


def test_cancel_of_a_final_job_is_409(client, store):
    job_id = submit(client)
    attempt = play_worker(store, job_id)
    store.finish(job_id, "succeeded", attempt=attempt, result={})
    response = client.post(f"/v1/experiments/{job_id}/cancel")
    assert response.status_code == 409
    assert response.headers["content-type"] == PROBLEM
    assert "already ended" in response.json()["detail"]


def test_delete_only_final_jobs(client, store):
    job_id = submit(client)
    response = client.delete(f"/v1/experiments/{job_id}")
    assert response.status_code == 409 and "final" in response.json()["detail"]
    client.post(f"/v1/experiments/{job_id}/cancel")
    assert client.delete(f"/v1/experiments/{job_id}").status_code == 204
    assert client.get(f"/v1/experiments/{job_id}").status_code == 404
    assert client.delete(f"/v1/experiments/{job_id}").status_code == 404
    assert job_id not in {j["id"] for j in client.get("/v1/experiments").json()["data"]}


@pytest.mark.parametrize(("method", "suffix"), [("POST", "/cancel"), ("DELETE", ""),
                                                ("GET", "/events")])
def test_unknown_ids_are_404(client, method, suffix):
    response = client.request(method, f"/v1/experiments/{'f' * 32}{suffix}")
    assert response.status_code == 404
    assert response.headers["content-type"] == PROBLEM


# --- Idempotency-Key -------------------------------------------------------------------------


def queued_messages(broker) -> int:
    return int(broker.llen("cpu"))


def test_same_key_same_body_is_the_same_job(client, broker):
    headers = {"Idempotency-Key": "order-42"}
    first = client.post("/v1/experiments", json=spec(), headers=headers)
    again = client.post("/v1/experiments", json=spec(), headers=headers)
    assert first.status_code == 202 and again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["idempotent-replayed"] == "true"
    assert again.headers["location"] == first.headers["location"]
    assert queued_messages(broker) == 1  # enqueued once


def test_same_key_other_body_is_422_naming_the_header(client):
    headers = {"Idempotency-Key": "order-43"}
    client.post("/v1/experiments", json=spec(), headers=headers)
    response = client.post("/v1/experiments", json=spec(name="other"), headers=headers)
    assert response.status_code == 422
    (error,) = response.json()["errors"]
    assert error["field"] == "Idempotency-Key" and error["in"] == "header"
    assert "different request body" in error["msg"]


def test_concurrent_duplicates_are_one_job(server, broker, redis_server):
    redis_server.client(DB).flushdb()

    def post(_: int):
        with server.client() as http:
            return http.post("/v1/experiments", json=spec(),
                             headers={"Idempotency-Key": "burst"})

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(post, range(16)))
    assert {r.status_code for r in responses} <= {200, 202}
    assert sum(r.status_code == 202 for r in responses) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    assert queued_messages(broker) == 1


@pytest.mark.parametrize("key", [b"", b"x" * 256, b"has space", "ünï".encode()])
def test_malformed_keys_are_422(client, key):
    response = client.post("/v1/experiments", json=spec(), headers={"Idempotency-Key": key})
    assert response.status_code == 422
    assert response.json()["errors"][0]["in"] == "header"


# --- callback_url ----------------------------------------------------------------------------


def test_callback_url_is_stored_apart_from_the_spec(client):
    job_id = submit(client, callback_url="http://127.0.0.1:9/hook")
    job = client.get(f"/v1/experiments/{job_id}").json()
    assert job["callback_url"] == "http://127.0.0.1:9/hook"
    assert "callback_url" not in job["spec"]


@pytest.mark.parametrize(("url", "why"), [
    ("https://evil.org/x", "allowlist"),
    ("http://10.0.0.1/x", "allowlist"),
    ("file:///etc/passwd", "http"),
    ("https://u:p@a.example.com/x", "credentials"),
])
def test_callback_urls_outside_the_allowlist_are_422(client, broker, url, why):
    response = client.post("/v1/experiments", json=spec(callback_url=url))
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "callback_url" and why in error["msg"]
    assert queued_messages(broker) == 0


# --- server-sent events ----------------------------------------------------------------------


def read_events(response: httpx.Response, into: list[tuple[str, Any]]) -> None:
    event = None
    for line in response.iter_lines():
        if line.startswith(":"):
            into.append(("comment", line))
        elif line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            into.append((event or "message", json.loads(line[6:])))


def test_events_stream_progress_and_the_end(server, client, store):
    job_id = submit(client)
    events: list[tuple[str, Any]] = []
    with server.client() as http, http.stream("GET", f"/v1/experiments/{job_id}/events") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        reader = threading.Thread(target=read_events, args=(r, events))
        reader.start()
        time.sleep(0.5)  # idle: keep-alive comments
        attempt = play_worker(store, job_id)
        for step in (1, 2):
            store.update_progress(job_id, {"step": step, "total_steps": 2, "eta_s": 2 - step},
                                  attempt=attempt)
            time.sleep(0.1)
        store.finish(job_id, "succeeded", attempt=attempt,
                     result={"summary": {"outcome": "completed"}})
        reader.join(10)
        assert not reader.is_alive(), events  # the stream ended by itself
    names = [name for name, _ in events if name != "comment"]
    assert names[0] == "status" and events[0][1]["status"] == "queued"
    assert names[-1] == "end"
    statuses = [d["status"] for n, d in events if n == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    assert [d["step"] for n, d in events if n == "progress"] == [1, 2]
    end = events[-1][1]
    assert end["status"] == "succeeded" and end["summary"] == {"outcome": "completed"}
    assert any(name == "comment" for name, _ in events)


def test_events_of_a_finished_job_end_at_once(client, store):
    job_id = submit(client)
    client.post(f"/v1/experiments/{job_id}/cancel")
    events: list[tuple[str, Any]] = []
    with client.stream("GET", f"/v1/experiments/{job_id}/events") as response:
        read_events(response, events)
    assert [n for n, _ in events] == ["status", "end"]
    assert events[-1][1]["status"] == "cancelled"


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_count_jobs_queues_durations_and_requests(client, store):
    done = submit(client)
    submit(client)
    attempt = play_worker(store, done)
    store.finish(done, "succeeded", attempt=attempt, result={})
    client.get(f"/v1/experiments/{done}")
    response = client.get("/metrics", headers=OPERATOR)  # the details are for operators
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for line in (
        "trainability_store_up 1.0",
        'trainability_jobs{status="queued"} 1.0',
        'trainability_jobs{status="succeeded"} 1.0',
        'trainability_queue_depth{queue="cpu"} 2.0',
        'trainability_job_duration_seconds_count{status="succeeded"} 1.0',
        'trainability_job_duration_seconds_bucket{le="1.0",status="succeeded"} 1.0',
    ):
        assert line in text, line
    assert ('trainability_http_request_duration_seconds_count{method="GET",'
            'route="/v1/experiments/{job_id}",status="2xx"}') in text


# --- hostile bodies --------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    "[" * 100_000 + "]" * 100_000,  # nested beyond the parser's recursion limit
    '{"spec_version": 1, "training": {"steps": ' + "9" * 5000 + "}}",  # 5000-digit integer
])
def test_unreadable_json_is_422(server, raw):
    with server.client() as http:
        response = http.post("/v1/experiments", content=raw,
                             headers={"content-type": "application/json"})
    assert response.status_code in (413, 422), response.text
    if len(raw) <= 50_000:
        assert response.status_code == 422
    assert response.headers["content-type"] == PROBLEM


def test_deep_nesting_under_the_size_limit_is_422(client):
    raw = "[" * 20_000 + "]" * 20_000
    response = client.post("/v1/experiments", content=raw,
                           headers={"content-type": "application/json"})
    assert response.status_code == 422 and response.headers["content-type"] == PROBLEM


@pytest.mark.parametrize(("field", "value"), [
    ("steps", 10**30), ("steps", 1e400), ("batch_size", -(10**20)),
])
def test_huge_numbers_are_422(client, broker, field, value):
    doc = spec()
    doc["training"][field] = value
    raw = json.dumps(doc).replace("Infinity", "1e400")
    response = client.post("/v1/experiments", content=raw,
                           headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert queued_messages(broker) == 0


def test_oversized_bodies_are_413(client):
    response = client.post("/v1/experiments", content=b"{" + b" " * 60_000 + b"}",
                           headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.headers["content-type"] == PROBLEM


# --- Redis down ------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body"), [
    ("POST", "/v1/experiments/" + "a" * 32 + "/cancel", None),
    ("DELETE", "/v1/experiments/" + "a" * 32, None),
    ("GET", "/v1/experiments/" + "a" * 32 + "/events", None),
    ("POST", "/v1/experiments", {**spec(), "callback_url": None}),
])
def test_new_routes_answer_503_when_redis_is_down(api_without_redis, method, path, body):
    with api_without_redis.client() as http:
        headers = {"Idempotency-Key": "k"} if method == "POST" and body else {}
        response = http.request(method, path, json=body, headers=headers)
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == PROBLEM
    assert response.headers["retry-after"] == "7"


def test_metrics_answer_without_redis(api_without_redis):
    with api_without_redis.client() as http:
        response = http.get("/metrics")
    assert response.status_code == 200
    assert "trainability_store_up 0.0" in response.text
