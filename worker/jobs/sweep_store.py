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

from typing import Protocol, cast

import redis

from worker.core.errors import SweepNotFound
from worker.core.settings import Settings
from worker.jobs import codec
from worker.jobs.records import SWEEP_ID_RE, SweepPage, SweepRecord, utcnow
from worker.jobs.redis_conn import connect, translate_redis_errors
from worker.jobs.redis_layout import lua_source


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


class RedisSweepStore:
    """``SweepStore`` on Redis; see the module docstring for the key layout."""

    def __init__(self, client: redis.Redis, *, prefix: str, retention_seconds: int) -> None:
        self._r = client
        self._prefix = prefix
        self._ttl = retention_seconds
        self._create = client.register_script(lua_source("sweep_create"))
        self._add_job = client.register_script(lua_source("sweep_add_job"))

    def sweep_key(self, sweep_id: str) -> str:
        return f"{self._prefix}:sweep:{sweep_id}"

    def index_key(self) -> str:
        return f"{self._prefix}:sweeps"

    def create(self, record: SweepRecord) -> None:
        fields = codec.sweep_fields(record)
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
        return codec.sweep_record(raw)

    def add_job(self, sweep_id: str, point: int, job_id: str) -> None:
        args: list[str | int] = [self._ttl, codec.sweep_jobs_field(point), job_id,
                                 codec.format_time(utcnow())]
        with translate_redis_errors():
            done = self._add_job(keys=[self.sweep_key(sweep_id), self.index_key()], args=args)
        if not done:
            raise SweepNotFound(sweep_id)

    def list_sweeps(
        self, *, limit: int = 20, cursor: str | None = None, owner: str | None = None
    ) -> SweepPage:
        if limit < 1:
            raise ValueError("limit must be positive")
        top: str = "+inf" if cursor is None else f"({codec.decode_sweep_cursor(cursor)}"
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
                        found.append((int(score), codec.sweep_record(raw)))
                if expired:
                    self._r.zrem(self.index_key(), *expired)
                top = f"({int(rows[-1][1])}"
        items = [record for _, record in found[:limit]]
        next_cursor = codec.encode_sweep_cursor(found[limit - 1][0]) if len(found) > limit else None
        return SweepPage(items=items, next_cursor=next_cursor)

