"""The run task's broker message, written by us: what Celery's ``send_task`` would push.

A submission records its job and hands the run task to the workers in **one** Lua script
(``lua/create.lua``): one round trip, and no job recorded without its task or the other way
round. The script pushes this message onto the queue's Redis list, exactly where kombu's Redis
transport puts it (``LPUSH`` onto the list named after the queue, priority 0; the default
exchange, no ``global_keyprefix``), and a Celery worker consumes it like any other.

Why not ``send_task``: through Celery and kombu one publish cost more than everything else in
a ``POST /v1/experiments`` together (routing, a producer, a Redis client per publish, a second
round trip): the route answered 1.9x more requests a second without it (bench/bench_api.py).

The format is Celery's task message protocol 2 (docs.celeryq.dev, "Message Protocol") in
kombu's Redis envelope (the body base64-encoded JSON ``[args, kwargs, embed]``). It is checked
field by field against what Celery itself pushes, in a test against a real Redis
(``tests/worker/jobs/test_task_message.py``), so an upgrade of Celery or kombu that changes it
fails there. Stdlib only: the API imports it with the store.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import uuid
from typing import Any, Final

#: Celery's name of the run task (its one argument: the job id).
RUN_EXPERIMENT_TASK: Final = "trainability.run_experiment"

# Celery's defaults for a message sent by a process that is no worker: the origin is its
# "anonymous node name", replies (unused: results are ignored) would go to one id per process.
_ORIGIN: Final = f"gen{os.getpid()}@{socket.gethostname()}"
_REPLY_TO: Final = str(uuid.uuid4())
_EMBED: Final = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def run_task_message(job_id: str, queue: str) -> str:
    """The message of ``trainability.run_experiment(job_id)`` for the list ``queue``."""
    task_id = str(uuid.uuid4())
    args = [job_id]
    body = json.dumps([args, {}, _EMBED]).encode()
    message: dict[str, Any] = {
        "body": base64.b64encode(body).decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py", "task": RUN_EXPERIMENT_TASK, "id": task_id, "shadow": None,
            "eta": None, "expires": None, "group": None, "group_index": None, "retries": 0,
            "timelimit": [None, None], "root_id": task_id, "parent_id": None,
            "argsrepr": repr(args), "kwargsrepr": "{}", "origin": _ORIGIN,
            "ignore_result": None, "replaced_task_nesting": 0, "stamped_headers": None,
            "stamps": {},
        },
        "properties": {
            "correlation_id": task_id, "reply_to": _REPLY_TO, "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue}, "priority": 0,
            "body_encoding": "base64", "delivery_tag": str(uuid.uuid4()),
        },
    }
    return json.dumps(message)
