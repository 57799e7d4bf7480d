"""The job store: the source of truth for job state (a port, with Redis behind it).

Torch-free; the service and the worker share it. Redis layout (``{p}`` = key prefix)::

    {p}:job:{id}        hash   id, status, spec, name, queue, order, created_at, updated_at,
                               started_at, finished_at, attempts, worker,
                               progress (JSON), result (JSON), error, sweep_id
    {p}:jobs            zset   every job id, score = order (listing: highest = newest first)
    {p}:jobs:{status}   zset   job ids in that status, same scores (status filter)

``order`` is the creation time in microseconds on the Redis clock, bumped so that it is
strictly increasing: two jobs never tie, so pages follow creation order exactly.

Every key we write gets the retention TTL, refreshed on each write. An index entry can outlive
its job hash (a job that has not been written for the retention period expires on its own);
listing skips and removes such entries, and ``prune_index`` sweeps them all.

Status changes run in one Lua script, so a check-then-set cannot race: final states are final,
and ``attempt`` fences writes from an attempt that a later attempt has superseded.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol, cast, get_args

import redis

from worker.errors import InvalidCursor, JobNotFound, JobStateConflict, JobStoreError
from worker.redis_conn import connect, translate_redis_errors
from worker.settings import Settings

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

JOB_ID_RE: Final = re.compile(r"^[0-9a-f]{32}$")


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


@dataclass(frozen=True)
class JobRecord(JobSummary):
    """A whole job record as stored."""

    spec: str  # the normalized spec JSON, exactly as validated
    queue: str
    worker: str | None
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    sweep_id: str | None = None  # the sweep this job is a point of (worker/sweepstore.py)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES


@dataclass(frozen=True)
class JobPage:
    items: list[JobSummary]
    next_cursor: str | None


class JobStore(Protocol):
    """What the service and the worker need from a job store."""

    def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the store answers."""

    def create(
        self, spec_json: str, *, name: str | None, queue: str, sweep_id: str | None = None
    ) -> JobRecord:
        """Record a new ``queued`` job and return it."""

    def get(self, job_id: str) -> JobRecord:
        """The job, or ``JobNotFound``."""

    def list_jobs(
        self, *, status: JobStatus | None = None, limit: int = 20, cursor: str | None = None
    ) -> JobPage:
        """Newest first; ``cursor`` is the previous page's ``next_cursor``."""

    def start(self, job_id: str, *, worker: str) -> JobRecord:
        """Mark the job ``running`` for a new attempt (``attempts`` + 1) and return it."""

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

    def prune_index(self) -> int:
        """Drop index entries whose job expired; return how many jobs were dropped."""


def store_from_settings(settings: Settings) -> RedisJobStore:
    """The Redis job store configured by ``settings`` (one connection pool)."""
    return RedisJobStore(
        connect(settings), prefix=settings.key_prefix, retention_seconds=settings.retention_seconds
    )


# KEYS[1] job hash; KEYS[2] all-jobs index; KEYS[3] queued index.
# ARGV: ttl, then field/value pairs. Returns the job's order (a string, microseconds).
_CREATE_LUA = """
local now = redis.call('TIME')
local order = tonumber(now[1]) * 1000000 + tonumber(now[2])
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= order then order = tonumber(top[2]) + 1 end
order = string.format('%.0f', order)
local fields = {'order', order}
for i = 2, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[1])
local id = redis.call('HGET', KEYS[1], 'id')
for i = 2, 3 do
  redis.call('ZADD', KEYS[i], order, id)
  redis.call('EXPIRE', KEYS[i], ARGV[1])
end
return order
"""

# KEYS[1] job hash; KEYS[2] all-jobs index; KEYS[3..2+n] status indexes (names in ARGV).
# ARGV: new status, allowed-from (space-separated), ttl, count attempt (0/1),
#       expected attempt ('' = any), n, n status names, then field/value pairs to set.
# Returns {'ok', old} | {'missing'} | {'conflict', current} | {'stale', current, attempts}.
_TRANSITION_LUA = """
local current = redis.call('HGET', KEYS[1], 'status')
if not current then return {'missing'} end
local allowed = false
for s in string.gmatch(ARGV[2], '%S+') do
  if s == current then allowed = true end
end
if not allowed then return {'conflict', current} end
local attempts = redis.call('HGET', KEYS[1], 'attempts')
if ARGV[5] ~= '' and ARGV[5] ~= attempts then return {'stale', current, attempts} end
local new, ttl, n = ARGV[1], tonumber(ARGV[3]), tonumber(ARGV[6])
local id = redis.call('HGET', KEYS[1], 'id')
local score = redis.call('HGET', KEYS[1], 'order')
for i = 1, n do
  local name, key = ARGV[6 + i], KEYS[2 + i]
  if name == current and name ~= new then redis.call('ZREM', key, id) end
  if name == new then redis.call('ZADD', key, score, id) end
  redis.call('EXPIRE', key, ttl)
end
if ARGV[4] == '1' then redis.call('HINCRBY', KEYS[1], 'attempts', 1) end
local fields = {'status', new}
for i = 7 + n, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('ZADD', KEYS[2], score, id)
redis.call('EXPIRE', KEYS[1], ttl)
redis.call('EXPIRE', KEYS[2], ttl)
return {'ok', current}
"""

# KEYS[1] job hash; KEYS[2] all-jobs index; KEYS[3] running index.
# ARGV: progress JSON, now, ttl, attempt. Returns 1 if stored, else 0.
_PROGRESS_LUA = """
if redis.call('HGET', KEYS[1], 'status') ~= 'running' then return 0 end
if redis.call('HGET', KEYS[1], 'attempts') ~= ARGV[4] then return 0 end
redis.call('HSET', KEYS[1], 'progress', ARGV[1], 'updated_at', ARGV[2])
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ARGV[3]) end
return 1
"""

_SUMMARY_FIELDS: Final = (
    "id", "status", "name", "created_at", "updated_at", "started_at", "finished_at", "attempts",
)
_SCAN_CHUNK: Final = 100


class RedisJobStore:
    """``JobStore`` on Redis; see the module docstring for the key layout."""

    def __init__(self, client: redis.Redis, *, prefix: str, retention_seconds: int) -> None:
        self._r = client
        self._prefix = prefix
        self._ttl = retention_seconds
        self._create = client.register_script(_CREATE_LUA)
        self._transition = client.register_script(_TRANSITION_LUA)
        self._progress = client.register_script(_PROGRESS_LUA)

    # --- keys ----------------------------------------------------------------------------

    def job_key(self, job_id: str) -> str:
        return f"{self._prefix}:job:{job_id}"

    def index_key(self, status: JobStatus | None = None) -> str:
        return f"{self._prefix}:jobs" if status is None else f"{self._prefix}:jobs:{status}"

    def _all_index_keys(self) -> list[str]:
        return [self.index_key(), *(self.index_key(s) for s in STATUSES)]

    # --- JobStore ------------------------------------------------------------------------

    def ping(self) -> None:
        with translate_redis_errors():
            self._r.ping()

    def create(
        self, spec_json: str, *, name: str | None, queue: str, sweep_id: str | None = None
    ) -> JobRecord:
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
        keys = [self.job_key(job_id), self.index_key(), self.index_key("queued")]
        args: list[str | int] = [self._ttl, *(part for pair in fields.items() for part in pair)]
        with translate_redis_errors():
            self._create(keys=keys, args=args)
        return _record(fields)

    def get(self, job_id: str) -> JobRecord:
        if not JOB_ID_RE.match(job_id):
            raise JobNotFound(job_id)
        with translate_redis_errors():
            raw = cast(dict[str, str], self._r.hgetall(self.job_key(job_id)))
        if not raw:
            raise JobNotFound(job_id)
        return _record(raw)

    def list_jobs(
        self, *, status: JobStatus | None = None, limit: int = 20, cursor: str | None = None
    ) -> JobPage:
        if limit < 1:
            raise ValueError("limit must be positive")
        after = _decode_cursor(cursor) if cursor is not None else None
        index = self.index_key(status)
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
                    self._forget(expired)
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
        })
        return self.get(job_id)

    def update_progress(self, job_id: str, progress: dict[str, Any], *, attempt: int) -> bool:
        keys = [self.job_key(job_id), self.index_key(), self.index_key("running")]
        args: list[str | int] = [_dumps(progress), utcnow().isoformat(), self._ttl, attempt]
        with translate_redis_errors():
            return bool(self._progress(keys=keys, args=args))

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

    def prune_index(self) -> int:
        dropped: set[str] = set()
        with translate_redis_errors():
            for index in self._all_index_keys():
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
                        self._forget(gone)
                        dropped.update(gone)
                    start += len(members) - len(gone)
        return len(dropped)

    # --- helpers -------------------------------------------------------------------------

    def _forget(self, job_ids: Sequence[str]) -> None:
        """Remove ids from every index (their job hashes are gone)."""
        pipe = self._r.pipeline(transaction=False)
        for index in self._all_index_keys():
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
        keys = [self.job_key(job_id), self.index_key(), *(self.index_key(s) for s in STATUSES)]
        args: list[str | int] = [
            new, " ".join(ALLOWED_FROM.get(new, ())), self._ttl, int(count_attempt),
            "" if attempt is None else attempt, len(STATUSES), *STATUSES,
        ]
        for name, value in fields.items():
            args += [name, value]
        with translate_redis_errors():
            reply = cast(list[str], self._transition(keys=keys, args=args))
        if reply[0] == "missing":
            raise JobNotFound(job_id)
        if reply[0] == "conflict":
            raise JobStateConflict(job_id, reply[1], new)
        if reply[0] == "stale":
            raise JobStateConflict(
                job_id, reply[1], new, f"attempt {attempt} was superseded by attempt {reply[2]}"
            )


# --- record encoding ---------------------------------------------------------------------


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
