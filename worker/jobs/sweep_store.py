"""The sweep store: a sweep's definition and the jobs of each of its points (a port; Redis).

Torch-free. A sweep record holds what is needed to rebuild every point's spec (the base spec,
the mode, axes and variants, each point's varied values) and, per point, the ids of its jobs,
oldest first: a re-run appends a new job and keeps the history. Job state itself stays in the
job store; a sweep only points at jobs. Redis layout (``{p}`` = key prefix)::

    {p}:sweep:{id}      hash   id, name, mode, base (JSON), axes (JSON), variants (JSON),
                               points (JSON list of values), order, created_at, updated_at,
                               owner (the API key's name, empty when auth is off),
                               jobs:{i} (space-separated job ids of point i)
    {p}:sweeps          zset   every sweep id, score = order (newest first)

Every key gets the retention TTL, refreshed on each write, like the job store's.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol, cast

import redis

from worker.core.errors import InvalidCursor, SweepNotFound
from worker.core.settings import Settings
from worker.jobs.redis_conn import connect, translate_redis_errors

SWEEP_ID_RE: Final = re.compile(r"^[0-9a-f]{32}$")


def new_sweep_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class SweepPoint:
    index: int
    values: dict[str, Any]
    job_ids: list[str]  # oldest first; the last one is the point's current job


@dataclass(frozen=True)
class SweepRecord:
    id: str
    name: str | None
    mode: str
    base: dict[str, Any]
    axes: dict[str, list[Any]]
    variants: dict[str, dict[str, Any]] | None
    points: list[SweepPoint]
    created_at: datetime
    updated_at: datetime
    owner: str | None = None  # the API key's name when auth is on (its jobs carry it too)


@dataclass(frozen=True)
class SweepPage:
    items: list[SweepRecord]
    next_cursor: str | None


class SweepStore(Protocol):
    """What the service needs to keep sweeps."""

    def create(self, record: SweepRecord) -> None:
        """Store a new sweep (its points with their first jobs)."""

    def get(self, sweep_id: str) -> SweepRecord:
        """The sweep, or ``SweepNotFound``."""

    def add_job(self, sweep_id: str, point: int, job_id: str) -> None:
        """Make ``job_id`` the current job of ``point`` (a re-run), keeping the older ones."""

    def list_sweeps(
        self, *, limit: int = 20, cursor: str | None = None, owner: str | None = None
    ) -> SweepPage:
        """Newest first (only ``owner``'s when given); ``cursor``: the last page's."""


def sweep_store_from_settings(settings: Settings) -> RedisSweepStore:
    return RedisSweepStore(
        connect(settings), prefix=settings.key_prefix, retention_seconds=settings.retention_seconds
    )


# KEYS[1] sweep hash; KEYS[2] index. ARGV: ttl, id, field/value pairs. Returns the order.
_CREATE_LUA = """
local now = redis.call('TIME')
local order = tonumber(now[1]) * 1000000 + tonumber(now[2])
local top = redis.call('ZREVRANGE', KEYS[2], 0, 0, 'WITHSCORES')
if top[2] and tonumber(top[2]) >= order then order = tonumber(top[2]) + 1 end
order = string.format('%.0f', order)
local fields = {'order', order}
for i = 3, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], order, ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return order
"""

# KEYS[1] sweep hash; KEYS[2] index. ARGV: ttl, field, job id, now. Returns 1, or 0: no sweep.
_ADD_JOB_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local ids = redis.call('HGET', KEYS[1], ARGV[2])
if ids and ids ~= '' then ids = ids .. ' ' .. ARGV[3] else ids = ARGV[3] end
redis.call('HSET', KEYS[1], ARGV[2], ids, 'updated_at', ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[1])
return 1
"""


class RedisSweepStore:
    """``SweepStore`` on Redis; see the module docstring for the key layout."""

    def __init__(self, client: redis.Redis, *, prefix: str, retention_seconds: int) -> None:
        self._r = client
        self._prefix = prefix
        self._ttl = retention_seconds
        self._create = client.register_script(_CREATE_LUA)
        self._add_job = client.register_script(_ADD_JOB_LUA)

    def sweep_key(self, sweep_id: str) -> str:
        return f"{self._prefix}:sweep:{sweep_id}"

    def index_key(self) -> str:
        return f"{self._prefix}:sweeps"

    def create(self, record: SweepRecord) -> None:
        fields: dict[str, str] = {
            "id": record.id,
            "name": record.name or "",
            "mode": record.mode,
            "base": _dumps(record.base),
            "axes": _dumps(record.axes),
            "variants": _dumps(record.variants),
            "points": _dumps([p.values for p in record.points]),
            "created_at": record.created_at.isoformat(),
            "updated_at": record.updated_at.isoformat(),
            "owner": record.owner or "",
        }
        for p in record.points:
            fields[f"jobs:{p.index}"] = " ".join(p.job_ids)
        args: list[str | int] = [self._ttl, record.id]
        for name, value in fields.items():
            args += [name, value]
        with translate_redis_errors():
            self._create(keys=[self.sweep_key(record.id), self.index_key()], args=args)

    def get(self, sweep_id: str) -> SweepRecord:
        if not SWEEP_ID_RE.match(sweep_id):
            raise SweepNotFound(sweep_id)
        with translate_redis_errors():
            raw = cast(dict[str, str], self._r.hgetall(self.sweep_key(sweep_id)))
        if not raw:
            raise SweepNotFound(sweep_id)
        return _record(raw)

    def add_job(self, sweep_id: str, point: int, job_id: str) -> None:
        args: list[str | int] = [self._ttl, f"jobs:{point}", job_id, _now().isoformat()]
        with translate_redis_errors():
            done = self._add_job(keys=[self.sweep_key(sweep_id), self.index_key()], args=args)
        if not done:
            raise SweepNotFound(sweep_id)

    def list_sweeps(
        self, *, limit: int = 20, cursor: str | None = None, owner: str | None = None
    ) -> SweepPage:
        if limit < 1:
            raise ValueError("limit must be positive")
        top: str = "+inf" if cursor is None else f"({_decode_cursor(cursor)}"
        found: list[tuple[int, SweepRecord]] = []
        with translate_redis_errors():
            while len(found) <= limit:
                rows = cast(list[tuple[str, float]], self._r.zrange(
                    self.index_key(), top, "-inf", desc=True, byscore=True, withscores=True,
                    offset=0, num=limit + 1 - len(found),
                ))
                if not rows:
                    break
                pipe = self._r.pipeline(transaction=False)
                for member, _ in rows:
                    pipe.hgetall(self.sweep_key(member))
                expired = []
                for (member, score), raw in zip(rows, pipe.execute(), strict=True):
                    if not raw:
                        expired.append(member)
                    elif owner is None or raw.get("owner") == owner:  # else another key's
                        found.append((int(score), _record(raw)))
                if expired:
                    self._r.zrem(self.index_key(), *expired)
                top = f"({int(rows[-1][1])}"
        items = [record for _, record in found[:limit]]
        next_cursor = _encode_cursor(found[limit - 1][0]) if len(found) > limit else None
        return SweepPage(items=items, next_cursor=next_cursor)


def _now() -> datetime:
    return datetime.now(UTC)


def _dumps(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _record(raw: dict[str, str]) -> SweepRecord:
    values: list[dict[str, Any]] = json.loads(raw["points"])
    points = [
        SweepPoint(index=i, values=v, job_ids=raw.get(f"jobs:{i}", "").split())
        for i, v in enumerate(values)
    ]
    return SweepRecord(
        id=raw["id"],
        name=raw.get("name") or None,
        mode=raw["mode"],
        base=json.loads(raw["base"]),
        axes=json.loads(raw["axes"]),
        variants=json.loads(raw.get("variants", "null")),
        points=points,
        created_at=datetime.fromisoformat(raw["created_at"]),
        updated_at=datetime.fromisoformat(raw["updated_at"]),
        owner=raw.get("owner") or None,
    )


def _encode_cursor(score: int) -> str:
    return base64.urlsafe_b64encode(json.dumps(["s", score]).encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        tag, score = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor() from exc
    if tag != "s" or not isinstance(score, int):
        raise InvalidCursor()
    return score
