"""RedisRemedyLinks against a real redis-server: the job -> sweep link (with the retention
TTL), and the launch lock (one holder, released only by its own token, expiring by itself)."""

from __future__ import annotations

import time

import pytest

from worker.jobs.remedy_links import RedisRemedyLinks

DB = 0  # shared with tests/service/test_remedies_api.py (same feature), own key prefix
TTL = 600
JOB = "a" * 32


@pytest.fixture
def links(redis_server) -> RedisRemedyLinks:
    client = redis_server.client(DB)
    for key in client.scan_iter("rl:*"):
        client.delete(key)
    return RedisRemedyLinks(client, prefix="rl", retention_seconds=TTL)


def test_a_launch_links_the_sweep_with_the_retention_ttl(links, redis_server):
    assert links.sweep_of(JOB) is None
    token = links.begin_launch(JOB, 5)
    assert token is not None
    links.end_launch(JOB, token, "s1")
    assert links.sweep_of(JOB) == "s1"
    client = redis_server.client(DB)
    assert 0 < client.ttl(links.link_key(JOB)) <= TTL
    assert not client.exists(links.lock_key(JOB))  # released


def test_one_launch_at_a_time_and_only_its_token_releases_it(links):
    token = links.begin_launch(JOB, 5)
    assert token is not None and links.begin_launch(JOB, 5) is None
    links.end_launch(JOB, "not-the-token", None)
    assert links.begin_launch(JOB, 5) is None  # still held
    links.end_launch(JOB, token, None)
    assert links.sweep_of(JOB) is None  # a failed launch links nothing
    assert links.begin_launch(JOB, 5) is not None


def test_a_lock_whose_holder_died_expires_but_its_sweep_is_still_linked(links):
    token = links.begin_launch(JOB, 0.2)
    time.sleep(0.3)
    other = links.begin_launch(JOB, 5)
    assert token is not None and other is not None
    links.end_launch(JOB, token, "late")  # the late launch's sweep exists: keep track of it
    assert links.sweep_of(JOB) == "late"
    assert links.begin_launch(JOB, 5) is None  # and the new holder keeps its lock
