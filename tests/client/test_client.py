"""The client package on its own: what it imports, how answers become typed errors, the poll
backoff, axis parsing and table formatting of the CLI (httpx's MockTransport is a real
transport; the real service is exercised in tests/e2e/test_client_and_cli.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from trainability_client import (
    Backoff,
    Client,
    Conflict,
    PayloadTooLarge,
    RateLimited,
    ServerError,
    SweepRow,
    TrainabilityError,
    Unauthorized,
    ValidationFailed,
)
from trainability_client.cli import parse_axis, parse_variant
from trainability_client.formatting import format_table

ROOT = Path(__file__).resolve().parents[2]


def test_the_client_imports_neither_the_server_nor_torch():
    code = (
        "import sys, trainability_client, trainability_client.cli\n"
        "bad = ('torch', 'fastapi', 'starlette', 'matplotlib', 'celery', 'service', 'worker')\n"
        "leaked = sorted(m for m in sys.modules if m.split('.')[0] in bad)\n"
        "assert not leaked, leaked\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def answering(status: int, body: dict[str, Any] | None = None,
              headers: dict[str, str] | None = None) -> Client:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers={
            "content-type": "application/problem+json", **(headers or {})})

    return Client("http://service.test", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize("status, cls", [
    (401, Unauthorized), (409, Conflict), (413, PayloadTooLarge), (500, ServerError),
    (418, TrainabilityError),
])
def test_statuses_map_to_typed_errors(status, cls):
    problem = {"type": "urn:x", "title": "Nope", "status": status, "detail": "because"}
    with answering(status, problem) as client, pytest.raises(cls) as caught:
        client.get("x")
    assert caught.value.status == status and caught.value.detail == "because"
    assert str(caught.value) == f"{status} Nope: because"


def test_rate_limits_carry_retry_after():
    with answering(429, {"title": "Too Many Requests", "status": 429},
                   {"retry-after": "12"}) as client, pytest.raises(RateLimited) as caught:
        client.get("x")
    assert caught.value.retry_after == 12


def test_validation_errors_list_every_field():
    problem = {"title": "Request validation failed", "status": 422, "detail": "2 invalid",
               "errors": [{"field": "model.depth", "msg": "too small"},
                          {"field": "data.kind", "msg": "unknown"}]}
    with answering(422, problem) as client, pytest.raises(ValidationFailed) as caught:
        client.submit({"spec_version": 1})
    assert [e["field"] for e in caught.value.errors] == ["model.depth", "data.kind"]
    assert "model.depth: too small; data.kind: unknown" in str(caught.value)


def test_a_non_json_error_body_still_gives_a_typed_error():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="Bad Gateway from the proxy")

    with Client("http://x.test", transport=httpx.MockTransport(handler)) as client:
        with pytest.raises(ServerError, match="Bad Gateway from the proxy"):
            client.get("x")


def test_the_api_key_is_sent_as_a_bearer_token(monkeypatch):
    seen = {}

    def handler(request: httpx.Request) -> httpx.Response:
        seen["auth"] = request.headers.get("authorization")
        return httpx.Response(200, json={"id": "a", "status": "queued"})

    monkeypatch.setenv("TRAINABILITY_API_KEY", "k-123")
    with Client("http://x.test", transport=httpx.MockTransport(handler)) as client:
        assert client.get("a").status == "queued"
    assert seen["auth"] == "Bearer k-123"


def test_wait_retries_through_503_honouring_retry_after():
    answers = iter([
        httpx.Response(503, json={"title": "down", "status": 503}, headers={"retry-after": "0"}),
        httpx.Response(200, json={"id": "a", "status": "running"}),
        httpx.Response(200, json={"id": "a", "status": "succeeded", "result": {"x": 1}}),
    ])
    client = Client("http://x.test", transport=httpx.MockTransport(lambda r: next(answers)))
    job = client.wait("a", timeout=10, backoff=Backoff(initial=0.01))
    assert job.status == "succeeded" and job.result == {"x": 1}


def test_backoff_grows_to_its_maximum_and_respects_retry_after():
    backoff = Backoff(initial=1, factor=2, maximum=5)
    assert [backoff.next() for _ in range(5)] == [1, 2, 4, 5, 5]
    assert Backoff(initial=1).next(retry_after=7) == 7


def test_axis_values_are_json_when_they_parse():
    assert parse_axis("model.depth=2,8,16") == ("model.depth", [2, 8, 16])
    assert parse_axis("model.residual=false,true") == ("model.residual", [False, True])
    assert parse_axis("model.activation=sigmoid,tanh") == ("model.activation",
                                                           ["sigmoid", "tanh"])
    assert parse_variant("relu+res:model.activation=relu,model.residual=true") == (
        "relu+res", {"model.activation": "relu", "model.residual": True})


def test_the_table_aligns_columns():
    row = {"point": 0, "values": {"model.depth": 2}, "job_id": "j", "status": "succeeded",
           "grad_ratio_init": 2.5e-6, "findings_critical": 1}
    text = format_table(["model.depth"], [SweepRow.from_json(row)])
    header, rule, line = text.splitlines()
    assert header.split()[:3] == ["model.depth", "status", "outcome"]
    assert "2.50e-06" in line and len(rule) == len(header)
    json.dumps(text)


def test_the_clients_columns_are_the_servers():
    """The client keeps its own copy of the sweep columns (it imports nothing of the server);
    the CLI's table reads them from SweepRow."""
    from trainability_client.formatting import TABLE_COLUMNS
    from worker.core.sweeps import COLUMNS

    metrics = [c for c in COLUMNS if c not in ("point", "job_id")]
    assert [name for name, _ in TABLE_COLUMNS] == metrics
    assert set(SweepRow.__dataclass_fields__) == {*COLUMNS, "values", "previous_job_ids"}
