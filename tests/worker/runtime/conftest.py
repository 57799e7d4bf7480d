"""Shared fixtures of the worker runtime tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from worker.jobs.redis_store import RedisJobStore


@pytest.fixture
def fresh_store(redis_server) -> Callable[[int], RedisJobStore]:
    """``fresh_store(db)``: a job store on an emptied database of the test Redis."""
    def make(db: int) -> RedisJobStore:
        client = redis_server.client(db)
        client.flushdb()
        return RedisJobStore(client, prefix="x", retention_seconds=600)
    return make
