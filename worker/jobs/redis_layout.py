"""The job store's keys in Redis, and the Lua scripts that keep them in step.

Redis layout (``{p}`` = key prefix)::

    {p}:job:{id}          hash   id, status, spec, name, queue, order, created_at, updated_at,
                                 started_at, finished_at, attempts, worker,
                                 progress (JSON), result (JSON), error, sweep_id,
                                 owner (API key name), callback_url, cancel_requested ("1"),
                                 cancel_requested_at, queued_ts and started_ts (Redis clock,
                                 unix seconds), webhook (JSON: delivery state),
                                 mlflow (JSON: MLflow export state)
    {p}:job:{id}:lease    string "node|pid|attempt" of the attempt that runs the job; TTL
                                 lease_ttl_s, renewed by that attempt's heartbeat
    {p}:jobs              zset   every job id, score = order (listing: highest = newest first)
    {p}:jobs:{status}     zset   job ids in that status, same scores (status filter)
    {p}:owner:{name}:jobs zset   the job ids of one API key, same scores (its listing, quota)
    {p}:tag:{tag}:jobs    zset   the job ids carrying a tag, same scores (?tag= listings)
    {p}:sweep:{id}:jobs   zset   the job ids of one sweep, same scores (?sweep= listings)
    {p}:idem:{owner}:{h}  string "fingerprint job_id" of an Idempotency-Key (h: its SHA-256)
    {p}:webhooks:pending  zset   job id -> last delivery activity, for final jobs with a
                                 callback_url whose webhook is not done (an outbox)
    {p}:mlflow:pending    zset   job id -> last export activity, for final jobs whose MLflow
                                 export is queued or retrying (the exports' outbox)
    {p}:metrics:duration  hash   job duration histogram: "{status}|{le}", "{status}|sum"
    {p}:events:{id}       channel a word on every status or progress write (SSE wake-ups)

``order`` is the creation time in microseconds on the Redis clock, bumped so that it is
strictly increasing: two jobs never tie, so pages follow creation order exactly.

Every key we write gets the retention TTL (the lease and idempotency keys their own, shorter
ones), refreshed on each write. An index entry can outlive its job hash (a job that has not
been written for the retention period expires on its own); listing skips and removes such
entries, and ``prune_index`` sweeps them all.

Status changes run in Lua scripts (``worker/jobs/lua/*.lua``, package data), so a
check-then-set cannot race: final states are final, ``attempt`` fences writes from an attempt
that a later attempt has superseded, and an attempt starts only when no live lease holds the
job (``claim``). The scripts share one prelude (``lua/prelude.lua``: the ``move`` function)
that keeps the indexes, the lease, the webhook outbox, the duration histogram and the event
channel in step with the status. Some scripts build a key from a job id they read
(idempotency replay); the store therefore needs one Redis, not a cluster.
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Sequence
from importlib.resources import files
from typing import Any, Final

from worker.jobs.records import DURATION_BUCKETS, STATUSES, JobStatus, bucket_label

#: The scripts of ``RedisJobStore``, each run behind the prelude (``lua/{name}.lua``).
JOB_SCRIPTS = (
    "create", "transition", "claim", "renew_lease", "progress", "cancel", "reap",
    "touch_queued", "delete", "webhook", "mlflow",
)


#: The duration histogram's buckets, as every job script gets them (``lua/prelude.lua``).
_BUCKETS: Final = [[b, bucket_label(b)] for b in DURATION_BUCKETS]


@functools.cache
def lua_source(name: str) -> str:
    """The text of ``worker/jobs/lua/{name}.lua`` (read once per process)."""
    return (files("worker.jobs") / "lua" / f"{name}.lua").read_text(encoding="utf-8")


def job_script(name: str) -> str:
    """A job store script with the shared prelude in front."""
    return lua_source("prelude") + "\n" + lua_source(name)


class JobKeys:
    """The names of the job store's keys under one prefix (see the module docstring)."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix

    @property
    def prefix(self) -> str:
        return self._prefix

    def job_key(self, job_id: str) -> str:
        return f"{self._prefix}:job:{job_id}"

    def job_key_prefix(self) -> str:
        """What ``job_key`` puts before the id (a script builds keys of ids it reads)."""
        return f"{self._prefix}:job:"

    def lease_key(self, job_id: str) -> str:
        return f"{self._prefix}:job:{job_id}:lease"

    def index_key(self, status: JobStatus | None = None) -> str:
        return f"{self._prefix}:jobs" if status is None else f"{self._prefix}:jobs:{status}"

    def all_index_keys(self) -> list[str]:
        """The all-jobs index, then one per status in ``STATUSES`` order."""
        return [self.index_key(), *(self.index_key(s) for s in STATUSES)]

    def owner_index_key(self, owner: str) -> str:
        return f"{self._prefix}:owner:{owner}:jobs"

    def owner_index_pattern(self) -> str:
        """A ``SCAN`` pattern matching every owner's index."""
        return f"{self._prefix}:owner:*:jobs"

    def tag_index_key(self, tag: str) -> str:
        return f"{self._prefix}:tag:{tag}:jobs"

    def sweep_index_key(self, sweep_id: str) -> str:
        return f"{self._prefix}:sweep:{sweep_id}:jobs"

    def filter_index_patterns(self) -> list[str]:
        """``SCAN`` patterns matching every owner's, tag's and sweep's index."""
        return [self.owner_index_pattern(), f"{self._prefix}:tag:*:jobs",
                f"{self._prefix}:sweep:*:jobs"]

    def job_index_keys(self, *, owner: str | None, tags: Sequence[str],
                       sweep_id: str | None) -> list[str]:
        """The indexes beside the status ones that name a job: its owner's (the all-jobs
        index when it has none), its sweep's (when it has one), one per tag."""
        keys = [self.owner_index_key(owner) if owner else self.index_key()]
        if sweep_id:
            keys.append(self.sweep_index_key(sweep_id))
        return keys + [self.tag_index_key(tag) for tag in tags]

    def sweep_record_keys(self, sweep_id: str) -> list[str]:
        """The sweep's hash and the sweeps index (``worker/jobs/sweep_store.py``'s layout)."""
        return [f"{self._prefix}:sweep:{sweep_id}", f"{self._prefix}:sweeps"]

    def idempotency_key(self, owner: str | None, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return f"{self._prefix}:idem:{owner or '-'}:{digest}"

    def outbox_key(self) -> str:
        return f"{self._prefix}:webhooks:pending"

    def mlflow_outbox_key(self) -> str:
        return f"{self._prefix}:mlflow:pending"

    def histogram_key(self) -> str:
        return f"{self._prefix}:metrics:duration"

    def events_channel(self, job_id: str) -> str:
        return f"{self._prefix}:events:{job_id}"

    def script_args(self, job_id: str, ttl: int, params: dict[str, Any],
                    *extra: str) -> tuple[list[str], list[str]]:
        """A job script's keys (``script_keys``) and its one JSON argument (``lua/prelude.lua``:
        the retention ``ttl``, the job's events channel, the duration buckets, ``params``)."""
        params = {"ttl": ttl, "channel": self.events_channel(job_id), "buckets": _BUCKETS,
                  **params}
        return self.script_keys(job_id, *extra), [json.dumps(params)]

    def script_keys(self, job_id: str, *extra: str) -> list[str]:
        """The keys every job script gets first (``lua/prelude.lua``), then ``extra``."""
        return [
            self.job_key(job_id), self.index_key(), self.lease_key(job_id), self.outbox_key(),
            self.histogram_key(), *(self.index_key(s) for s in STATUSES), *extra,
        ]
