"""The open probes say little to everyone and the details to operators.

Found on main: ``/readyz`` listed every worker's hostname and queues, and ``/metrics``
counted jobs and requests across all keys, to anyone. Now both answer a summary unless the
request carries an operator key (``"operator": true`` in ``TRAINABILITY_API_KEYS``; with
auth on or off): ``service/auth.py``, ``service/api/routes/health.py``, ``routes/metrics.py``.
"""

from __future__ import annotations

import hashlib

import pytest

from tests.conftest import API_DB
from tests.service.conftest import _small_spec
from worker.jobs.registry import registry_from_settings

OPERATOR_KEY, USER_KEY = "probes-operator-key-5d1", "probes-user-key-93a"
DETAILS = ("trainability_jobs{", "trainability_queue_depth{", "trainability_http_request")


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def server(server_with):
    keys = [{"name": "ops", "operator": True,
             "sha256": hashlib.sha256(OPERATOR_KEY.encode()).hexdigest()},
            {"name": "user", "sha256": hashlib.sha256(USER_KEY.encode()).hexdigest()}]
    with server_with(api_keys=keys) as live:  # auth off: the operator key still counts
        yield live


@pytest.fixture
def client(server, redis_server):
    redis_server.client(API_DB).flushdb()
    registry_from_settings(server.app.state.settings).beat("w1@gpu-host-7", ["gpu"], pid=1)
    with server.client() as http:
        assert http.post("/v1/experiments", json=_small_spec()).status_code == 202
        yield http


@pytest.mark.parametrize("headers", [{}, bearer(USER_KEY), bearer("not-a-key")])
def test_hardening_12_readyz_and_metrics_are_summaries_without_an_operator_key(client,
                                                                             headers):
    """Hardening item 12: no hostnames, queues or per-status counts without an operator key."""
    ready = client.get("/readyz", headers=headers)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "redis": "ok", "workers": 1}
    assert "gpu-host-7" not in ready.text
    metrics = client.get("/metrics", headers=headers)
    assert metrics.status_code == 200
    assert "trainability_store_up 1.0" in metrics.text
    assert "trainability_workers 1.0" in metrics.text
    assert not [name for name in DETAILS if name in metrics.text], metrics.text


def test_hardening_12_an_operator_key_sees_the_details(client):
    """Hardening item 12: with an operator key, the workers and every count."""
    ready = client.get("/readyz", headers=bearer(OPERATOR_KEY)).json()
    assert ready["worker_details"] == [{"hostname": "w1@gpu-host-7", "queues": ["gpu"]}]
    metrics = client.get("/metrics", headers=bearer(OPERATOR_KEY)).text
    assert 'trainability_jobs{status="queued"} 1.0' in metrics
    assert 'trainability_queue_depth{queue="cpu"} 1.0' in metrics
    assert "trainability_http_request_duration_seconds_count" in metrics
