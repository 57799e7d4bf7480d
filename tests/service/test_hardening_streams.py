"""Server-sent event streams: a per-key cap, and one shared Redis pub/sub connection.

Found on main: 400 streams from one client took every Redis connection of the process and
136 other clients got 503. Now one API key (or, with auth off, one client address) holds at
most ``sse_max_streams_per_key`` streams (one more is a 429 with Retry-After), and every
stream of the process waits on one pub/sub connection (``worker/jobs/redis_feed.py``). The
API runs on a Redis of the test's own, so ``CLIENT LIST`` shows only its connections.
"""

from __future__ import annotations

import hashlib
from collections.abc import Generator
from contextlib import ExitStack
from typing import cast

import httpx

from service.settings import ServiceSettings
from tests.conftest import LiveServer
from tests.private_redis import own_redis
from tests.service.conftest import _small_spec

PROBLEM = "application/problem+json"
ALICE, BOB = "alice-streams-key", "bob-streams-key"
CAP = 3


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def pubsub_connections(redis_client) -> int:
    """Connections subscribed to a channel or a pattern."""
    return sum(1 for c in redis_client.client_list()
               if int(c.get("sub", 0)) + int(c.get("psub", 0)) > 0)


def open_stream(stack: ExitStack, client: httpx.Client, job_id: str,
                key: str) -> httpx.Response:
    """A stream, open until ``stack`` closes (its first line read: it has started)."""
    response = stack.enter_context(client.stream(
        "GET", f"/v1/experiments/{job_id}/events", headers=bearer(key)))
    if response.status_code == 200:
        # held by the stack: a dropped iterator is collected, and that closes the stream
        lines = cast(Generator[str, None, None], response.iter_lines())
        stack.callback(lines.close)
        assert next(lines) == "retry: 3000"
    else:
        response.read()
    return response


def test_hardening_10_streams_are_capped_per_key_and_share_one_pubsub(tmp_path):
    """Hardening item 10: the cap+1-th stream of a key is a 429; another key still gets one;
    every open stream shares one Redis pub/sub connection."""
    with own_redis(tmp_path) as redis_server:
        keys = [{"name": name, "sha256": hashlib.sha256(key.encode()).hexdigest()}
                for name, key in (("alice", ALICE), ("bob", BOB))]
        settings = ServiceSettings(redis_url=redis_server.url(), auth_enabled=True,
                                   api_keys=keys, sse_max_streams_per_key=CAP,
                                   sse_heartbeat_s=0.5, retry_after_s=4)
        with LiveServer(settings) as api, api.client() as client:
            mine, theirs = (client.post("/v1/experiments", json=_small_spec(),
                                        headers=bearer(key)).json()["id"]
                            for key in (ALICE, BOB))
            with ExitStack() as streams:
                opened = [open_stream(streams, client, mine, ALICE) for _ in range(CAP)]
                assert [r.status_code for r in opened] == [200] * CAP
                refused = open_stream(streams, client, mine, ALICE)
                other = open_stream(streams, client, theirs, BOB)

                assert refused.status_code == 429  # on main: 200, a fourth stream
                assert refused.headers["content-type"] == PROBLEM
                assert refused.headers["retry-after"] == "4"
                assert "event streams open" in refused.json()["detail"]
                assert other.status_code == 200  # another key is not refused
                assert api.app.state.stream_limits.open == CAP + 1
                assert pubsub_connections(redis_server.client()) == 1

            # closed streams free their slots
            with ExitStack() as streams:
                assert open_stream(streams, client, mine, ALICE).status_code == 200

