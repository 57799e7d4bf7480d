"""callback_url against a URL-prefix allowlist, over real HTTP: what would leave the prefix is a
422 naming ``callback_url``, before anything is recorded or queued.

Found on main: with the allowlist ``http://127.0.0.1:18090/ci/``, ``.../ci/../admin`` was
accepted (clients and servers remove dot segments after the prefix check) and delivered,
signed, to ``/admin``. The unit cases: ``tests/worker/jobs/test_allowlist_paths.py``.
"""

from __future__ import annotations

import pytest

from tests.conftest import API_DB
from tests.service.conftest import _small_spec

ALLOW = "http://127.0.0.1:18090/ci/"


@pytest.fixture(scope="module")
def server(server_with):
    with server_with(webhook_allowlist=[ALLOW]) as live:
        yield live


@pytest.fixture
def client(server, redis_server):
    redis_server.client(API_DB).flushdb()
    with server.client() as http:
        yield http


@pytest.mark.parametrize(("url", "why"), [
    (ALLOW + "../admin", "'.' or '..' segments"),
    (ALLOW + "./../../admin3", "'.' or '..' segments"),
    (ALLOW + "%2e%2e/admin", "encoded dots or slashes"),
    (ALLOW + "%2E./admin", "encoded dots or slashes"),
    (ALLOW + "a%2fb", "encoded dots or slashes"),
    (ALLOW + "a%5cb", "encoded dots or slashes"),
    ("http://user:pw@127.0.0.1:18090/ci/x", "credentials"),
    ("http://user@127.0.0.1:18090/ci/x", "credentials"),
])
def test_hardening_7_callbacks_that_would_leave_the_prefix_are_422(client, redis_server, url,
                                                                   why):
    """Hardening item 7: dot segments, encoded slashes and userinfo are refused at submit."""
    response = client.post("/v1/experiments", json={**_small_spec(), "callback_url": url})
    assert response.status_code == 422, response.text
    (error,) = response.json()["errors"]
    assert error["field"] == "callback_url" and why in error["msg"], error
    assert redis_server.client(API_DB).llen("cpu") == 0  # nothing recorded or queued


def test_a_callback_inside_the_prefix_is_accepted(client):
    response = client.post("/v1/experiments",
                           json={**_small_spec(), "callback_url": ALLOW + "run?job=1"})
    assert response.status_code == 202, response.text
