"""The job store: the source of truth for job state (a port, with Redis behind it).

Torch-free; the service and the worker share it. Redis layout (``{p}`` = key prefix)::

    {p}:job:{id}          hash   id, status, spec, name, queue, order, created_at, updated_at,
                                 started_at, finished_at, attempts, worker,
                                 progress (JSON), result (JSON), error, sweep_id,
                                 owner (API key name), callback_url, cancel_requested ("1"),
                                 cancel_requested_at, queued_ts and started_ts (Redis clock,
                                 unix seconds), webhook (JSON: delivery state)
    {p}:job:{id}:lease    string "node|pid|attempt" of the attempt that runs the job; TTL
                                 job_heartbeat_ttl_s, renewed by that attempt's heartbeat
    {p}:jobs              zset   every job id, score = order (listing: highest = newest first)
    {p}:jobs:{status}     zset   job ids in that status, same scores (status filter)
    {p}:owner:{name}:jobs zset   the job ids of one API key, same scores (its listing, quota)
    {p}:idem:{owner}:{h}  string "fingerprint job_id" of an Idempotency-Key (h: its SHA-256)
    {p}:webhooks:pending  zset   job id -> last delivery activity, for final jobs with a
                                 callback_url whose webhook is not done (an outbox)
    {p}:metrics:duration  hash   job duration histogram: "{status}|{le}", "{status}|sum"
    {p}:events:{id}       channel a word on every status or progress write (SSE wake-ups)

``order`` is the creation time in microseconds on the Redis clock, bumped so that it is
strictly increasing: two jobs never tie, so pages follow creation order exactly.

Every key we write gets the retention TTL (the lease and idempotency keys their own, shorter
ones), refreshed on each write. An index entry can outlive its job hash (a job that has not
been written for the retention period expires on its own); listing skips and removes such
entries, and ``prune_index`` sweeps them all.

Status changes run in Lua scripts, so a check-then-set cannot race: final states are final,
``attempt`` fences writes from an attempt that a later attempt has superseded, and an attempt
starts only when no live lease holds the job (``claim``). The scripts share one prelude (the
``move`` function) that keeps the indexes, the lease, the webhook outbox, the duration
histogram and the event channel in step with the status. Some scripts build a key from a
job id they read (idempotency replay); the store therefore needs one Redis, not a cluster.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, cast, get_args

import redis

from worker.core.errors import (
    IdempotencyKeyReused,
    InvalidCursor,
    JobNotFound,
    JobStateConflict,
    JobStoreError,
    QuotaExceeded,
)
from worker.core.settings import Settings
from worker.jobs.redis_conn import connect, translate_redis_errors

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled", "timed_out"]
FinalStatus = Literal["succeeded", "failed", "cancelled", "timed_out"]
STATUSES: Final[tuple[JobStatus, ...]] = get_args(JobStatus)
FINAL_STATUSES: Final[frozenset[str]] = frozenset(get_args(FinalStatus))

#: The statuses a job may move *from* into each status. Absent pairs are refused.
ALLOWED_FROM: Final[Mapping[JobStatus, tuple[JobStatus, ...]]] = {
    "running": ("queued", "running"),  # running -> running: a redelivered or retried attempt
    "succeeded": ("running",),
    "failed": ("queued", "running"),  # queued -> failed: the task could not be enqueued
    "cancelled": ("queued", "running"),
    "timed_out": ("running",),
}

#: Upper bounds (seconds) of the job duration histogram (``/metrics``).
DURATION_BUCKETS: Final[tuple[float, ...]] = (
    1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200,
)

JOB_ID_RE: Final = re.compile(r"^[0-9a-f]{32}$")
OWNER_RE: Final = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

ClaimOutcome = Literal["started", "busy", "final", "missing", "cancelled", "exhausted"]
ReapOutcome = Literal["requeued", "failed", "cancelled", "alive", "skip"]
HeartbeatAnswer = Literal["ok", "cancel", "lost"]


def new_job_id() -> str:
    """A random, unguessable job id (uuid4 as 32 hex digits)."""
    return uuid.uuid4().hex


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class JobSummary:
    """What a listing shows per job (no spec, no result)."""

    id: str
    status: JobStatus
    name: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int
    owner: str | None  # the API key's name (None: submitted without auth)


@dataclass(frozen=True)
class JobRecord(JobSummary):
    """A whole job record as stored."""

    spec: str  # the normalized spec JSON, exactly as validated
    queue: str
    worker: str | None
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    sweep_id: str | None = None  # the sweep this job is a point of (worker/jobs/sweep_store.py)
    callback_url: str | None = None
    cancel_requested: bool = False
    webhook: dict[str, Any] | None = None  # callback delivery state (worker/jobs/webhooks.py)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class JobPage:
    items: list[JobSummary]
    next_cursor: str | None


@dataclass(frozen=True)
class Claim:
    """What ``claim`` did: ``started`` (as ``attempt``), or why not."""

    outcome: ClaimOutcome
    attempt: int = 0
    lease: str | None = None  # ``busy``: the live lease ("node|pid|attempt")
    status: str | None = None  # ``final``: the job's status


@dataclass(frozen=True)
class Lease:
    """Who runs an attempt: the Celery node, the process id there, and the attempt."""

    node: str
    pid: int
    attempt: int

    @classmethod
    def parse(cls, value: str) -> Lease | None:
        node, _, rest = value.rpartition("|")
        node, _, pid = node.rpartition("|")
        try:
            return cls(node=node, pid=int(pid), attempt=int(rest))
        except ValueError:
            return None


@dataclass(frozen=True)
class RunningJob:
    """A running job as the reaper sees it."""

    id: str
    attempt: int
    queue: str
    worker: str | None
    lease_alive: bool


@dataclass(frozen=True)
class StoreSnapshot:
    """Counts for ``/metrics``: jobs per status and the duration histogram."""

    jobs: dict[str, int]
    durations: dict[str, dict[str, float]]  # status -> {"1": n, ..., "+Inf": n, "sum": s}


class JobStore(Protocol):
    """What the service and the worker need from a job store."""

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers."""

    def create(
        self, spec_json: str, *, name: str | None, queue: str, sweep_id: str | None = None,
        owner: str | None = None, callback_url: str | None = None,
        max_active: int | None = None,
    ) -> JobRecord:
        """Record a new ``queued`` job and return it (``QuotaExceeded`` over ``max_active``)."""

    def create_idempotent(
        self, spec_json: str, *, name: str | None, queue: str, idempotency_key: str,
        fingerprint: str, ttl_s: int, owner: str | None = None,
        callback_url: str | None = None, max_active: int | None = None,
        sweep_id: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """``create`` once per (owner, key): (the job, whether it was created now)."""

    def forget_idempotency_key(self, owner: str | None, key: str) -> None:
        """Let the key create a new job."""

    def get(self, job_id: str) -> JobRecord:
        """The job, or ``JobNotFound``."""

    def list_jobs(
        self, *, status: JobStatus | None = None, limit: int = 20, cursor: str | None = None,
        owner: str | None = None,
    ) -> JobPage:
        """Newest first; ``cursor`` is the previous page's ``next_cursor``."""

    def start(self, job_id: str, *, worker: str) -> JobRecord:
        """Mark the job ``running`` for a new attempt (``attempts`` + 1) and return it.

        Low level (no lease, no checks beyond the transition): workers use ``claim``."""

    def claim(
        self, job_id: str, *, worker: str, holder: str, lease_ttl_s: float, max_attempts: int,
        replace: str | None = None,
    ) -> Claim:
        """Start a new attempt unless the job is final, cancelled, exhausted or held by a live
        lease (other than ``replace``)."""

    def heartbeat(
        self, job_id: str, *, attempt: int, lease: str, lease_ttl_s: float
    ) -> HeartbeatAnswer:
        """Renew the attempt's lease: ``ok``, ``cancel`` (asked to stop) or ``lost``."""

    def is_cancel_requested(self, job_id: str) -> bool:
        """Whether someone asked to cancel the job."""

    def request_cancel(self, job_id: str) -> JobStatus:
        """Flag the job for cancellation; a queued job is cancelled at once. Returns the status
        (``cancelled`` or ``running``); ``JobStateConflict`` when the job is already final."""

    def update_progress(self, job_id: str, progress: dict[str, Any], *, attempt: int) -> bool:
        """Store progress; False when the job is no longer running this attempt."""

    def finish(
        self,
        job_id: str,
        status: FinalStatus,
        *,
        attempt: int | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        progress: dict[str, Any] | None = None,
    ) -> None:
        """Move the job to a final status with its result or error."""

    def delete(self, job_id: str) -> None:
        """Delete a final job (``JobStateConflict`` if it is not final)."""

    def prune_index(self) -> int:
        """Drop index entries whose job expired; return how many jobs were dropped."""


def store_from_settings(settings: Settings) -> RedisJobStore:
    """The Redis job store configured by ``settings`` (one connection pool)."""
    return RedisJobStore(
        connect(settings), prefix=settings.key_prefix, retention_seconds=settings.retention_seconds
    )


# Every script gets the same first keys and one JSON argument (P), decoded here:
# KEYS[1] job hash, [2] all-jobs index, [3] lease, [4] webhook outbox, [5] duration histogram,
# [6..11] status indexes in STATUSES order; script-specific keys follow.
_PRELUDE = """
local P = cjson.decode(ARGV[1])
local JOB, ALL, LEASE, OUTBOX, HIST = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local INDEX = {queued = KEYS[6], running = KEYS[7], succeeded = KEYS[8], failed = KEYS[9],
               cancelled = KEYS[10], timed_out = KEYS[11]}
local FINAL = {succeeded = true, failed = true, cancelled = true, timed_out = true}
local TTL = tonumber(P.ttl)

local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function keep(key) redis.call('EXPIRE', key, TTL) end

local function hset(fields)
  local flat = {}
  for k, v in pairs(fields) do flat[#flat + 1] = k; flat[#flat + 1] = v end
  if #flat > 0 then redis.call('HSET', JOB, unpack(flat)) end
end

-- Move the job from status `current` to `new`, setting `fields`; a final status also ends
-- the lease, queues the webhook (if any) and counts the duration.
local function move(current, new, fields)
  local id = redis.call('HGET', JOB, 'id')
  local score = redis.call('HGET', JOB, 'order')
  if current ~= new then redis.call('ZREM', INDEX[current], id) end
  redis.call('ZADD', INDEX[new], score, id)
  redis.call('ZADD', ALL, score, id)
  fields.status = new
  hset(fields)
  keep(JOB); keep(ALL); keep(INDEX[new])
  if FINAL[new] then
    redis.call('DEL', LEASE)
    local t = now()
    local callback = redis.call('HGET', JOB, 'callback_url')
    if callback and callback ~= '' then
      redis.call('ZADD', OUTBOX, t, id); keep(OUTBOX)
    end
    local started = tonumber(redis.call('HGET', JOB, 'started_ts') or '')
    if started then
      local d = math.max(0, t - started)
      for _, b in ipairs(P.buckets) do
        if d <= b[1] then redis.call('HINCRBY', HIST, new .. '|' .. b[2], 1) end
      end
      redis.call('HINCRBY', HIST, new .. '|+Inf', 1)
      redis.call('HINCRBYFLOAT', HIST, new .. '|sum', string.format('%.6f', d))
      keep(HIST)
    end
  end
  redis.call('PUBLISH', P.channel, new)
end
"""

# KEYS[12] owner index (unused when P.owner is ''); KEYS[13] idempotency key (unused when
# P.fingerprint is ''). Returns {'created', order} | {'replay', id} | {'mismatch', id} |
# {'quota', count}.
_CREATE_LUA = _PRELUDE + """
if P.fingerprint ~= '' then
  local prev = redis.call('GET', KEYS[13])
  if prev then
    local sep = string.find(prev, ' ', 1, true)
    local fingerprint, job = string.sub(prev, 1, sep - 1), string.sub(prev, sep + 1)
    if redis.call('EXISTS', P.job_prefix .. job) == 1 then
      if fingerprint == P.fingerprint then return {'replay', job} end
      return {'mismatch', job}
    end
  end
end
if P.owner ~= '' and P.max_active > 0 then
  local active = redis.call('ZINTERCARD', 2, KEYS[12], INDEX.queued, 'LIMIT', P.max_active)
  if active < P.max_active then
    active = active + redis.call('ZINTERCARD', 2, KEYS[12], INDEX.running,
                                 'LIMIT', P.max_active)
  end
  if active >= P.max_active then return {'quota', tostring(active)} end
end
local tm = redis.call('TIME')
local order = tonumber(tm[1]) * 1000000 + tonumber(tm[2])
local top = redis.call('ZREVRANGE', ALL, 0, 0, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= order then order = tonumber(top[2]) + 1 end
order = string.format('%.0f', order)
local fields = P.fields
fields.order = order
fields.queued_ts = string.format('%.6f', now())
hset(fields)
keep(JOB)
for _, key in ipairs({ALL, INDEX.queued}) do
  redis.call('ZADD', key, order, fields.id); keep(key)
end
if P.owner ~= '' then redis.call('ZADD', KEYS[12], order, fields.id); keep(KEYS[12]) end
if P.fingerprint ~= '' then
  redis.call('SET', KEYS[13], P.fingerprint .. ' ' .. fields.id, 'EX', P.idempotency_ttl)
end
redis.call('PUBLISH', P.channel, 'queued')
return {'created', order}
"""

# Generic transition (finish, legacy start). Returns {'ok', old} | {'missing'} |
# {'conflict', current} | {'stale', current, attempts}.
_TRANSITION_LUA = _PRELUDE + """
local current = redis.call('HGET', JOB, 'status')
if not current then return {'missing'} end
local allowed = false
for _, s in ipairs(P.from) do if s == current then allowed = true end end
if not allowed then return {'conflict', current} end
local attempts = redis.call('HGET', JOB, 'attempts')
if P.attempt and tostring(P.attempt) ~= attempts then return {'stale', current, attempts} end
if P.count_attempt then redis.call('HINCRBY', JOB, 'attempts', 1) end
move(current, P.new, P.fields)
return {'ok', current}
"""

# Start an attempt, atomically with its lease. See ``RedisJobStore.claim``.
_CLAIM_LUA = _PRELUDE + """
local status = redis.call('HGET', JOB, 'status')
if not status then return {'missing'} end
if FINAL[status] then return {'final', status} end
local stamp = {updated_at = P.now_iso, finished_at = P.now_iso}
if redis.call('HGET', JOB, 'cancel_requested') == '1' then
  stamp.error = P.cancel_reason
  move(status, 'cancelled', stamp)
  return {'cancelled'}
end
if status == 'running' then
  local lease = redis.call('GET', LEASE)
  if lease and lease ~= P.replace then return {'busy', lease} end
end
local attempts = tonumber(redis.call('HGET', JOB, 'attempts') or '0')
if attempts >= P.max_attempts then
  stamp.error = P.exhausted_reason
  move(status, 'failed', stamp)
  return {'exhausted', tostring(attempts)}
end
attempts = redis.call('HINCRBY', JOB, 'attempts', 1)
move(status, 'running', {started_at = P.now_iso, updated_at = P.now_iso, worker = P.worker,
                         progress = 'null', error = '',
                         started_ts = string.format('%.6f', now())})
redis.call('SET', LEASE, P.holder .. '|' .. attempts, 'PX', P.lease_ms)
return {'started', tostring(attempts)}
"""

_HEARTBEAT_LUA = _PRELUDE + """
if redis.call('HGET', JOB, 'status') ~= 'running'
   or redis.call('HGET', JOB, 'attempts') ~= tostring(P.attempt) then
  return 'lost'
end
redis.call('SET', LEASE, P.lease, 'PX', P.lease_ms)
keep(JOB)
if redis.call('HGET', JOB, 'cancel_requested') == '1' then return 'cancel' end
return 'ok'
"""

_PROGRESS_LUA = _PRELUDE + """
if redis.call('HGET', JOB, 'status') ~= 'running' then return 0 end
if redis.call('HGET', JOB, 'attempts') ~= tostring(P.attempt) then return 0 end
hset({progress = P.progress, updated_at = P.now_iso})
keep(JOB); keep(ALL); keep(INDEX.running)
redis.call('PUBLISH', P.channel, 'progress')
return 1
"""

# Returns {'missing'} | {'conflict', status} | {'cancelled'} | {'requested', status}.
_CANCEL_LUA = _PRELUDE + """
local status = redis.call('HGET', JOB, 'status')
if not status then return {'missing'} end
if FINAL[status] then return {'conflict', status} end
hset({cancel_requested = '1', cancel_requested_at = P.now_iso, updated_at = P.now_iso})
keep(JOB)
if status == 'queued' then
  move('queued', 'cancelled', {finished_at = P.now_iso, error = P.queued_reason})
  return {'cancelled'}
end
redis.call('PUBLISH', P.channel, 'cancel')
return {'requested', status}
"""

# A running attempt whose lease expired: re-queue it, or end it. See ``RedisJobStore.reap``.
_REAP_LUA = _PRELUDE + """
local status = redis.call('HGET', JOB, 'status')
local attempts = redis.call('HGET', JOB, 'attempts')
if status ~= 'running' or attempts ~= tostring(P.attempt) then return 'skip' end
if redis.call('EXISTS', LEASE) == 1 then return 'alive' end
local stamp = {updated_at = P.now_iso}
if redis.call('HGET', JOB, 'cancel_requested') == '1' then
  stamp.finished_at = P.now_iso; stamp.error = P.cancel_reason
  move('running', 'cancelled', stamp)
  return 'cancelled'
end
if tonumber(attempts) >= P.max_attempts then
  stamp.finished_at = P.now_iso; stamp.error = P.exhausted_reason
  move('running', 'failed', stamp)
  return 'failed'
end
stamp.error = P.lost_reason
stamp.queued_ts = string.format('%.6f', now())
move('running', 'queued', stamp)
return 'requeued'
"""

# A queued job the broker lost is sent again: note the time, unless it moved meanwhile.
_TOUCH_QUEUED_LUA = _PRELUDE + """
if redis.call('HGET', JOB, 'status') ~= 'queued' then return 0 end
if redis.call('HGET', JOB, 'queued_ts') ~= P.queued_ts then return 0 end
redis.call('HSET', JOB, 'queued_ts', string.format('%.6f', now()))
return 1
"""

# KEYS[12] the owner's index. Returns {'deleted'} | {'missing'} | {'conflict', status}.
_DELETE_LUA = _PRELUDE + """
local status = redis.call('HGET', JOB, 'status')
if not status then return {'missing'} end
if not FINAL[status] then return {'conflict', status} end
local id = redis.call('HGET', JOB, 'id')
for _, key in pairs(INDEX) do redis.call('ZREM', key, id) end
for _, key in ipairs({ALL, OUTBOX, KEYS[12]}) do redis.call('ZREM', key, id) end
redis.call('DEL', JOB, LEASE)
redis.call('PUBLISH', P.channel, 'deleted')
return {'deleted'}
"""

# Record webhook delivery state; P.pending: keep (true) or drop (false) the outbox entry.
_WEBHOOK_LUA = _PRELUDE + """
if redis.call('EXISTS', JOB) == 0 then
  redis.call('ZREM', OUTBOX, P.id)
  return 0
end
redis.call('HSET', JOB, 'webhook', P.state)
keep(JOB)
if P.pending then
  redis.call('ZADD', OUTBOX, now(), P.id); keep(OUTBOX)
else
  redis.call('ZREM', OUTBOX, P.id)
end
return 1
"""

_SUMMARY_FIELDS: Final = (
    "id", "status", "name", "created_at", "updated_at", "started_at", "finished_at", "attempts",
    "owner",
)
_SCAN_CHUNK: Final = 100

CANCEL_QUEUED_REASON: Final = "cancelled before it started"
CANCEL_REASON: Final = "cancelled on request"


class RedisJobStore:
    """``JobStore`` on Redis; see the module docstring for the key layout."""

    def __init__(self, client: redis.Redis, *, prefix: str, retention_seconds: int) -> None:
        self._r = client
        self._prefix = prefix
        self._ttl = retention_seconds
        self._create = client.register_script(_CREATE_LUA)
        self._transition = client.register_script(_TRANSITION_LUA)
        self._claim = client.register_script(_CLAIM_LUA)
        self._heartbeat = client.register_script(_HEARTBEAT_LUA)
        self._progress = client.register_script(_PROGRESS_LUA)
        self._cancel = client.register_script(_CANCEL_LUA)
        self._reap = client.register_script(_REAP_LUA)
        self._touch_queued = client.register_script(_TOUCH_QUEUED_LUA)
        self._delete = client.register_script(_DELETE_LUA)
        self._webhook = client.register_script(_WEBHOOK_LUA)

    @property
    def client(self) -> redis.Redis:
        return self._r

    @property
    def prefix(self) -> str:
        return self._prefix

    # --- keys ----------------------------------------------------------------------------

    def job_key(self, job_id: str) -> str:
        return f"{self._prefix}:job:{job_id}"

    def lease_key(self, job_id: str) -> str:
        return f"{self._prefix}:job:{job_id}:lease"

    def index_key(self, status: JobStatus | None = None) -> str:
        return f"{self._prefix}:jobs" if status is None else f"{self._prefix}:jobs:{status}"

    def owner_index_key(self, owner: str) -> str:
        return f"{self._prefix}:owner:{owner}:jobs"

    def idempotency_key(self, owner: str | None, key: str) -> str:
        digest = hashlib.sha256(key.encode()).hexdigest()
        return f"{self._prefix}:idem:{owner or '-'}:{digest}"

    def outbox_key(self) -> str:
        return f"{self._prefix}:webhooks:pending"

    def histogram_key(self) -> str:
        return f"{self._prefix}:metrics:duration"

    def events_channel(self, job_id: str) -> str:
        return f"{self._prefix}:events:{job_id}"

    def _all_index_keys(self) -> list[str]:
        return [self.index_key(), *(self.index_key(s) for s in STATUSES)]

    def _keys(self, job_id: str, *extra: str) -> list[str]:
        return [
            self.job_key(job_id), self.index_key(), self.lease_key(job_id), self.outbox_key(),
            self.histogram_key(), *(self.index_key(s) for s in STATUSES), *extra,
        ]

    def _run(self, script: Any, job_id: str, params: dict[str, Any], *extra: str) -> Any:
        params = {
            "ttl": self._ttl, "channel": self.events_channel(job_id),
            "buckets": [[b, _label(b)] for b in DURATION_BUCKETS], **params,
        }
        with translate_redis_errors():
            return script(keys=self._keys(job_id, *extra), args=[json.dumps(params)])

    # --- JobStore ------------------------------------------------------------------------

    def ping(self) -> None:
        with translate_redis_errors():
            self._r.ping()

    def redis_time(self) -> float:
        """Now on the Redis clock (unix seconds): the clock of ``queued_ts``/``started_ts``."""
        with translate_redis_errors():
            seconds, micros = self._r.time()
        return seconds + micros / 1e6

    def create(
        self, spec_json: str, *, name: str | None, queue: str, sweep_id: str | None = None,
        owner: str | None = None, callback_url: str | None = None,
        max_active: int | None = None,
    ) -> JobRecord:
        record, _ = self._create_job(
            spec_json, name=name, queue=queue, sweep_id=sweep_id, owner=owner,
            callback_url=callback_url, max_active=max_active,
        )
        return record

    def create_idempotent(
        self, spec_json: str, *, name: str | None, queue: str, idempotency_key: str,
        fingerprint: str, ttl_s: int, owner: str | None = None,
        callback_url: str | None = None, max_active: int | None = None,
        sweep_id: str | None = None,
    ) -> tuple[JobRecord, bool]:
        """Like ``create``, once per (owner, key): (the job, whether it was created now).

        The same key with the same ``fingerprint`` returns the job the key created, even while
        that request is still in flight; another fingerprint is ``IdempotencyKeyReused``.
        """
        return self._create_job(
            spec_json, name=name, queue=queue, sweep_id=sweep_id, owner=owner,
            callback_url=callback_url, max_active=max_active,
            idempotency=(self.idempotency_key(owner, idempotency_key), fingerprint, ttl_s),
        )

    def forget_idempotency_key(self, owner: str | None, key: str) -> None:
        """Let the key create a new job (its first request could not be enqueued)."""
        with translate_redis_errors():
            self._r.delete(self.idempotency_key(owner, key))

    def _create_job(
        self, spec_json: str, *, name: str | None, queue: str, sweep_id: str | None,
        owner: str | None, callback_url: str | None, max_active: int | None,
        idempotency: tuple[str, str, int] | None = None,
    ) -> tuple[JobRecord, bool]:
        if owner is not None and not OWNER_RE.match(owner):
            raise ValueError(f"owner {owner!r} is not a valid API key name")
        job_id, now = new_job_id(), utcnow().isoformat()
        fields = {
            "id": job_id, "status": "queued", "spec": spec_json, "queue": queue,
            "created_at": now, "updated_at": now, "attempts": "0",
            "progress": "null", "result": "null",
        }
        if name is not None:
            fields["name"] = name
        if sweep_id is not None:
            fields["sweep_id"] = sweep_id
        if owner is not None:
            fields["owner"] = owner
        if callback_url is not None:
            fields["callback_url"] = callback_url
        idem_key, fingerprint, idem_ttl = idempotency or ("", "", 0)
        params = {
            "fields": fields, "owner": owner or "", "max_active": max_active or 0,
            "fingerprint": fingerprint, "idempotency_ttl": idem_ttl,
            "job_prefix": f"{self._prefix}:job:",
        }
        owner_key = self.owner_index_key(owner) if owner else self.index_key()
        reply = cast(list[str], self._run(
            self._create, job_id, params, owner_key, idem_key or self.index_key()
        ))
        if reply[0] == "replay":
            return self.get(reply[1]), False
        if reply[0] == "mismatch":
            raise IdempotencyKeyReused(reply[1])
        if reply[0] == "quota":
            raise QuotaExceeded(owner=owner or "", limit=max_active or 0)
        return _record(fields), True

    def get(self, job_id: str) -> JobRecord:
        if not JOB_ID_RE.match(job_id):
            raise JobNotFound(job_id)
        with translate_redis_errors():
            raw = cast(dict[str, str], self._r.hgetall(self.job_key(job_id)))
        if not raw:
            raise JobNotFound(job_id)
        return _record(raw)

    def list_jobs(
        self, *, status: JobStatus | None = None, limit: int = 20, cursor: str | None = None,
        owner: str | None = None,
    ) -> JobPage:
        if limit < 1:
            raise ValueError("limit must be positive")
        after = _decode_cursor(cursor) if cursor is not None else None
        # A key's own index when there is an owner: its jobs only, status read per job.
        index = self.owner_index_key(owner) if owner is not None else self.index_key(status)
        top: str | int = "+inf" if after is None else after[0]
        found: list[tuple[int, JobSummary]] = []
        offset = 0
        with translate_redis_errors():
            while len(found) <= limit:
                rows = cast(list[tuple[str, float]], self._r.zrange(
                    index, top, "-inf", desc=True, byscore=True, withscores=True,
                    offset=offset, num=max(limit + 1, 16),
                ))
                if not rows:
                    break
                if after is None and offset == 0:
                    top = int(rows[0][1])  # pin the window: jobs created meanwhile come later
                offset += len(rows)
                candidates = [
                    (member, int(score)) for member, score in rows
                    if after is None or (int(score), member) < after
                ]
                pipe = self._r.pipeline(transaction=False)
                for member, _ in candidates:
                    pipe.hmget(self.job_key(member), _SUMMARY_FIELDS)
                expired: list[str] = []
                for (member, score), values in zip(candidates, pipe.execute(), strict=True):
                    raw = {k: v for k, v in zip(_SUMMARY_FIELDS, values, strict=True) if v}
                    if "status" not in raw:
                        expired.append(member)
                    elif status is None or raw["status"] == status:
                        found.append((score, _summary(raw)))
                if expired:
                    self._forget(expired, owner=owner)
                    offset -= len(expired)  # they were in this index, before the offset
        page = [summary for _, summary in found[:limit]]
        next_cursor = None
        if len(found) > limit:
            score, last = found[limit - 1]
            next_cursor = _encode_cursor(score, last.id)
        return JobPage(items=page, next_cursor=next_cursor)

    def start(self, job_id: str, *, worker: str) -> JobRecord:
        now = utcnow().isoformat()
        self._move(job_id, "running", count_attempt=True, fields={
            "started_at": now, "updated_at": now, "worker": worker, "progress": "null",
            "started_ts": f"{time.time():.6f}",
        })
        return self.get(job_id)

    def claim(
        self, job_id: str, *, worker: str, holder: str, lease_ttl_s: float, max_attempts: int,
        replace: str | None = None,
    ) -> Claim:
        """Start attempt n+1 of the job for ``worker`` and take its lease (``holder|n``).

        Refused, with the reason, when the job is final or gone; when it is ``running`` under
        a live lease other than ``replace`` (``busy``: another attempt runs it, so this is a
        duplicate delivery); when cancellation was asked (the job ends ``cancelled``); or when
        it already had ``max_attempts`` attempts (it ends ``failed``: every worker that ran it
        was lost).
        """
        now = utcnow().isoformat()
        reply = cast(list[str], self._run(self._claim, job_id, {
            "worker": worker, "holder": holder, "lease_ms": int(lease_ttl_s * 1000),
            "max_attempts": max_attempts, "replace": replace or "", "now_iso": now,
            "cancel_reason": CANCEL_QUEUED_REASON if replace is None else CANCEL_REASON,
            "exhausted_reason": exhausted_reason(max_attempts),
        }))
        outcome = cast(ClaimOutcome, reply[0])
        if outcome == "started":
            return Claim("started", attempt=int(reply[1]))
        if outcome == "busy":
            return Claim("busy", lease=reply[1])
        if outcome == "final":
            return Claim("final", status=reply[1])
        if outcome == "exhausted":
            return Claim("exhausted", attempt=int(reply[1]))
        return Claim(outcome)

    def heartbeat(
        self, job_id: str, *, attempt: int, lease: str, lease_ttl_s: float
    ) -> HeartbeatAnswer:
        return cast(HeartbeatAnswer, self._run(self._heartbeat, job_id, {
            "attempt": attempt, "lease": lease, "lease_ms": int(lease_ttl_s * 1000),
        }))

    def lease(self, job_id: str) -> str | None:
        with translate_redis_errors():
            return cast(str | None, self._r.get(self.lease_key(job_id)))

    def is_cancel_requested(self, job_id: str) -> bool:
        with translate_redis_errors():
            return self._r.hget(self.job_key(job_id), "cancel_requested") == "1"

    def request_cancel(self, job_id: str) -> JobStatus:
        if not JOB_ID_RE.match(job_id):
            raise JobNotFound(job_id)
        reply = cast(list[str], self._run(self._cancel, job_id, {
            "now_iso": utcnow().isoformat(), "queued_reason": CANCEL_QUEUED_REASON,
        }))
        if reply[0] == "missing":
            raise JobNotFound(job_id)
        if reply[0] == "conflict":
            raise JobStateConflict(job_id, reply[1], "cancelled", "it has already ended")
        return "cancelled" if reply[0] == "cancelled" else cast(JobStatus, reply[1])

    def update_progress(self, job_id: str, progress: dict[str, Any], *, attempt: int) -> bool:
        return bool(self._run(self._progress, job_id, {
            "progress": _dumps(progress), "now_iso": utcnow().isoformat(), "attempt": attempt,
        }))

    def finish(
        self,
        job_id: str,
        status: FinalStatus,
        *,
        attempt: int | None = None,
        result: dict[str, Any] | None = None,
        error: str | None = None,
        progress: dict[str, Any] | None = None,
    ) -> None:
        if status not in FINAL_STATUSES:
            raise ValueError(f"{status!r} is not a final status")
        now = utcnow().isoformat()
        fields = {"finished_at": now, "updated_at": now}
        if result is not None:
            fields["result"] = _dumps(result)
        if error is not None:
            fields["error"] = error
        if progress is not None:
            fields["progress"] = _dumps(progress)
        self._move(job_id, status, fields=fields, attempt=attempt)

    def delete(self, job_id: str) -> None:
        if not JOB_ID_RE.match(job_id):
            raise JobNotFound(job_id)
        with translate_redis_errors():
            owner = cast(str | None, self._r.hget(self.job_key(job_id), "owner"))
        owner_key = self.owner_index_key(owner) if owner else self.index_key()
        reply = cast(list[str], self._run(self._delete, job_id, {}, owner_key))
        if reply[0] == "missing":
            raise JobNotFound(job_id)
        if reply[0] == "conflict":
            raise JobStateConflict(job_id, reply[1], "deleted", "only a final job can be deleted")

    # --- the reaper's view (worker/runtime/reaper.py) ---------------------------------------

    def running_jobs(self) -> list[RunningJob]:
        """Every running job, with whether its lease is alive."""
        with translate_redis_errors():
            ids = cast(list[str], self._r.zrange(self.index_key("running"), 0, -1))
            pipe = self._r.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(self.job_key(job_id), ("status", "attempts", "queue", "worker"))
                pipe.exists(self.lease_key(job_id))
            replies = pipe.execute()
        out = []
        for i, job_id in enumerate(ids):
            status, attempts, queue, worker = replies[2 * i]
            if status == "running":
                out.append(RunningJob(id=job_id, attempt=int(attempts or 0), queue=queue or "",
                                      worker=worker or None,
                                      lease_alive=bool(replies[2 * i + 1])))
        return out

    def reap(self, job_id: str, *, attempt: int, max_attempts: int, lost_after_s: float,
             worker: str | None = None) -> ReapOutcome:
        """End or re-queue a running attempt whose lease expired (its worker is gone).

        ``requeued`` (back to ``queued``; send its task again) while attempts remain;
        ``failed`` with the reason after ``max_attempts``; ``cancelled`` when cancellation
        was asked. ``alive``/``skip``: the lease came back, or the job moved on.
        """
        who = f" on {worker}" if worker else ""
        return cast(ReapOutcome, self._run(self._reap, job_id, {
            "attempt": attempt, "max_attempts": max_attempts, "now_iso": utcnow().isoformat(),
            "cancel_reason": f"{CANCEL_REASON}; its worker was lost before it stopped",
            "exhausted_reason": exhausted_reason(max_attempts),
            "lost_reason": f"attempt {attempt}{who} was lost (no heartbeat for "
                           f"{lost_after_s:g} s); re-queued",
        }))

    def queued_jobs(self, created_before: float | None = None) -> list[tuple[str, str, str]]:
        """Queued jobs (created before ``created_before``, unix seconds on the Redis clock):
        (id, queue, queued_ts on the Redis clock as stored)."""
        top = "+inf" if created_before is None else int(created_before * 1_000_000)
        with translate_redis_errors():
            ids = cast(list[str], self._r.zrange(self.index_key("queued"), "-inf", top,
                                                 byscore=True))
            pipe = self._r.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(self.job_key(job_id), ("status", "queue", "queued_ts"))
            replies = pipe.execute()
        return [
            (job_id, queue or "", queued_ts or "0")
            for job_id, (status, queue, queued_ts) in zip(ids, replies, strict=True)
            if status == "queued"
        ]

    def touch_queued(self, job_id: str, queued_ts: str) -> bool:
        """Mark a queued job as sent again now; False if it moved on since ``queued_ts``."""
        return bool(self._run(self._touch_queued, job_id, {"queued_ts": queued_ts}))

    # --- webhooks (worker/jobs/webhooks.py) ------------------------------------------------------

    def set_webhook_state(self, job_id: str, state: dict[str, Any], *, pending: bool) -> None:
        """Record the delivery state; ``pending`` keeps the job in the outbox."""
        self._run(self._webhook, job_id, {"id": job_id, "state": _dumps(state),
                                          "pending": pending})

    def webhook_outbox(self, idle_for_s: float) -> list[str]:
        """Jobs whose webhook is not done and saw no delivery activity for ``idle_for_s``."""
        cutoff = self.redis_time() - idle_for_s
        with translate_redis_errors():
            return cast(list[str], self._r.zrange(
                self.outbox_key(), "-inf", cutoff, byscore=True, offset=0, num=1000
            ))

    # --- metrics ---------------------------------------------------------------------------

    def snapshot(self) -> StoreSnapshot:
        """Jobs per status (index sizes) and the duration histogram, for ``/metrics``."""
        with translate_redis_errors():
            pipe = self._r.pipeline(transaction=False)
            for status in STATUSES:
                pipe.zcard(self.index_key(status))
            pipe.hgetall(self.histogram_key())
            *counts, hist = pipe.execute()
        durations: dict[str, dict[str, float]] = {}
        for name, value in cast(dict[str, str], hist).items():
            final, _, bucket = name.partition("|")
            durations.setdefault(final, {})[bucket] = float(value)
        return StoreSnapshot(jobs=dict(zip(STATUSES, counts, strict=True)), durations=durations)

    def prune_index(self) -> int:
        dropped: set[str] = set()
        with translate_redis_errors():
            owner_indexes = list(self._r.scan_iter(f"{self._prefix}:owner:*:jobs", count=500))
            for index in [*self._all_index_keys(), *owner_indexes, self.outbox_key()]:
                start = 0
                while True:
                    members = cast(
                        list[str], self._r.zrange(index, start, start + _SCAN_CHUNK - 1)
                    )
                    if not members:
                        break
                    pipe = self._r.pipeline(transaction=False)
                    for member in members:
                        pipe.exists(self.job_key(member))
                    gone = [m for m, n in zip(members, pipe.execute(), strict=True) if not n]
                    if gone:
                        pipe = self._r.pipeline(transaction=False)
                        for key in [*self._all_index_keys(), index]:
                            pipe.zrem(key, *gone)
                        pipe.execute()
                        dropped.update(gone)
                    start += len(members) - len(gone)
        return len(dropped)

    # --- helpers -------------------------------------------------------------------------

    def _forget(self, job_ids: Sequence[str], *, owner: str | None = None) -> None:
        """Remove ids from every index (their job hashes are gone)."""
        pipe = self._r.pipeline(transaction=False)
        keys = self._all_index_keys()
        if owner is not None:
            keys.append(self.owner_index_key(owner))
        for index in keys:
            pipe.zrem(index, *job_ids)
        pipe.execute()

    def _move(
        self,
        job_id: str,
        new: JobStatus,
        *,
        fields: Mapping[str, str],
        count_attempt: bool = False,
        attempt: int | None = None,
    ) -> None:
        params: dict[str, Any] = {
            "new": new, "from": list(ALLOWED_FROM.get(new, ())), "count_attempt": count_attempt,
            "fields": dict(fields),
        }
        if attempt is not None:
            params["attempt"] = attempt
        reply = cast(list[str], self._run(self._transition, job_id, params))
        if reply[0] == "missing":
            raise JobNotFound(job_id)
        if reply[0] == "conflict":
            raise JobStateConflict(job_id, reply[1], new)
        if reply[0] == "stale":
            raise JobStateConflict(
                job_id, reply[1], new, f"attempt {attempt} was superseded by attempt {reply[2]}"
            )


def exhausted_reason(max_attempts: int) -> str:
    return (
        f"gave up after {max_attempts} attempt(s): the worker running it was lost each time "
        "(killed, out of memory, or its host went away)"
    )


# --- record encoding ---------------------------------------------------------------------


def _label(bound: float) -> str:
    """Prometheus's ``le`` label of a bucket bound (``1``, ``0.5``)."""
    return f"{bound:g}"


def _dumps(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise JobStoreError(f"value is not JSON-safe: {exc}") from exc


def _time(raw: Mapping[str, str], name: str) -> datetime | None:
    value = raw.get(name)
    return datetime.fromisoformat(value) if value else None


def _summary(raw: Mapping[str, str]) -> JobSummary:
    return JobSummary(**_summary_fields(raw))


def _summary_fields(raw: Mapping[str, str]) -> dict[str, Any]:
    return {
        "id": raw["id"],
        "status": raw["status"],
        "name": raw.get("name") or None,
        "created_at": datetime.fromisoformat(raw["created_at"]),
        "updated_at": datetime.fromisoformat(raw["updated_at"]),
        "started_at": _time(raw, "started_at"),
        "finished_at": _time(raw, "finished_at"),
        "attempts": int(raw.get("attempts", "0")),
        "owner": raw.get("owner") or None,
    }


def _record(raw: Mapping[str, str]) -> JobRecord:
    return JobRecord(
        **_summary_fields(raw),
        spec=raw["spec"],
        queue=raw["queue"],
        worker=raw.get("worker") or None,
        progress=json.loads(raw.get("progress", "null")),
        result=json.loads(raw.get("result", "null")),
        error=raw.get("error") or None,
        sweep_id=raw.get("sweep_id") or None,
        callback_url=raw.get("callback_url") or None,
        cancel_requested=raw.get("cancel_requested") == "1",
        webhook=json.loads(raw["webhook"]) if raw.get("webhook") else None,
    )


def _encode_cursor(score: int, job_id: str) -> str:
    """Opaque to clients: the position (order, id) of the last item on the page."""
    raw = json.dumps([score, job_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[int, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        score, job_id = json.loads(raw)
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor() from exc
    if not (isinstance(score, int) and isinstance(job_id, str) and JOB_ID_RE.match(job_id)):
        raise InvalidCursor()
    return score, job_id
