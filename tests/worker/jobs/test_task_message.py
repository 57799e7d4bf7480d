"""The run task's message we write (``worker/jobs/task_message.py``) is the one Celery writes.

Against a real Redis: Celery's own ``send_task`` (our app configuration, ``make_celery``)
pushes its message onto a queue's list, ours goes onto another, and the two are compared
field by field; only the per-message ids (and the per-process origin and reply-to) may
differ. A Celery or kombu upgrade that changes the format fails here. That a worker runs our
messages is shown by every end-to-end test that submits through the API.
"""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import pytest

from worker.core.settings import Settings
from worker.jobs.dispatch import make_celery
from worker.jobs.task_message import RUN_EXPERIMENT_TASK, run_task_message

DB = 7  # as tests/service/test_experiment_usecases.py: flushed by each test that uses it
JOB_ID = "0123456789abcdef0123456789abcdef"
UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
PER_MESSAGE = {("headers", "id"), ("headers", "root_id"), ("properties", "correlation_id"),
               ("properties", "delivery_tag")}
PER_PROCESS = {("headers", "origin"), ("properties", "reply_to")}


def celery_message(redis_server, queue: str) -> dict[str, Any]:
    client = redis_server.client(DB)
    client.flushdb()
    app = make_celery(Settings(redis_url=f"redis://127.0.0.1:{redis_server.port}/{DB}"))
    with app.connection_for_write() as connection:  # closed here, with its Redis client
        app.send_task(RUN_EXPERIMENT_TASK, args=[JOB_ID], queue=queue, connection=connection)
    app.close()
    (raw,) = client.lrange(queue, 0, -1)
    message: dict[str, Any] = json.loads(raw)
    return message


def without(message: dict[str, Any], fields: set[tuple[str, str]]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(message))
    for section, name in fields:
        del out[section][name]
    return out


@pytest.mark.parametrize("queue", ["cpu", "gpu"])
def test_our_message_is_celerys_but_for_its_ids(redis_server, queue: str) -> None:
    theirs = celery_message(redis_server, queue)
    ours = json.loads(run_task_message(JOB_ID, queue))
    assert without(ours, PER_MESSAGE | PER_PROCESS) == without(theirs, PER_MESSAGE | PER_PROCESS)
    assert base64.b64decode(ours["body"]) == base64.b64decode(theirs["body"])
    for section, name in PER_PROCESS:  # the same shape: "gen{pid}@{host}", a UUID
        assert type(ours[section][name]) is type(theirs[section][name])
    assert re.match(r"^gen\d+@", ours["headers"]["origin"])
    assert ours["properties"]["delivery_info"]["routing_key"] == queue


def test_each_message_has_its_own_task_and_delivery_ids() -> None:
    a, b = (json.loads(run_task_message(JOB_ID, "cpu")) for _ in range(2))
    for m in (a, b):
        assert UUID_RE.match(m["headers"]["id"]) and UUID_RE.match(
            m["properties"]["delivery_tag"])
        # one task: its root and its correlation are itself (as Celery sets them)
        assert m["headers"]["root_id"] == m["headers"]["id"] == m["properties"]["correlation_id"]
    assert a["headers"]["id"] != b["headers"]["id"]
    assert a["properties"]["delivery_tag"] != b["properties"]["delivery_tag"]
    assert a["properties"]["delivery_tag"] != a["headers"]["id"]
