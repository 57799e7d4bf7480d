"""Retention counts from the final state: live jobs' keys get their TTL back (``keep_alive``).

Every key of the job store carries the retention TTL, refreshed by each write of the job
(``worker/jobs/redis_layout.py``). A job that waits in a queue, or runs, longer than the
retention period without a write would expire before it ends (a 202, then a 404: no final
state, no webhook). The reaper therefore calls ``JobStore.keep_alive`` with every queued and
running job: their hashes, every index that names them (owner, sweep, tags, status) and their
sweep get the full TTL again, so the retention period starts at the final write.

Plain ``EXPIRE`` commands, pipelined (not a script): refreshing a TTL twice, or on a key just
deleted, is harmless, and a job that went final meanwhile got the same TTL from that write.
"""

from __future__ import annotations

import json
from typing import cast

import redis

from worker.jobs.redis_conn import translate_redis_errors
from worker.jobs.redis_layout import JobKeys


def keep_alive(client: redis.Redis, keys: JobKeys, job_ids: list[str], *, ttl_s: int) -> int:
    """Refresh the TTL of the queued or running jobs among ``job_ids`` (and of what names
    them); how many were live."""
    if not job_ids:
        return 0
    with translate_redis_errors():
        pipe = client.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hmget(keys.job_key(job_id), ("status", "owner", "tags", "sweep_id"))
        rows = cast(list[list[str | None]], pipe.execute())
        refresh: dict[str, None] = dict.fromkeys(
            [keys.index_key(), keys.index_key("queued"), keys.index_key("running")])
        live = 0
        for job_id, (status, owner, tags, sweep_id) in zip(job_ids, rows, strict=True):
            if status not in ("queued", "running"):
                continue
            live += 1
            refresh[keys.job_key(job_id)] = None
            refresh.update(dict.fromkeys(keys.job_index_keys(
                owner=owner, tags=json.loads(tags) if tags else [], sweep_id=sweep_id)))
            if sweep_id:
                refresh.update(dict.fromkeys(keys.sweep_record_keys(sweep_id)))
        pipe = client.pipeline(transaction=False)
        for key in refresh:
            pipe.expire(key, ttl_s)
        pipe.execute()
    return live
