"""Which sweep holds a job's remedies: one link per job, and a launch lock (a port; Redis).

``POST /v1/experiments/{id}/remedies`` runs a finished job's fixes as a sweep once; the link
lets a second POST (and the GET of the outcome) find that sweep instead of launching the twins
again. The lock keeps two concurrent POSTs for one job from both launching. Torch-free; the
records stay where they are (the job in the job store, the twins in the sweep store): this
only points from one to the other. Redis layout (``{p}`` = key prefix)::

    {p}:remedies:{job_id}         string  the remedies sweep's id (retention TTL, like the
                                          job's); replaced by a re-run
    {p}:remedies:{job_id}:launch  string  a launch in progress: its token (expires by itself)
"""

from __future__ import annotations

import uuid
from typing import Protocol, cast

import redis

from worker.core.settings import Settings
from worker.jobs.redis_conn import connect, translate_redis_errors
from worker.jobs.redis_layout import lua_source


class RemedyLinks(Protocol):
    """What the service needs to remember which sweep tries a job's fixes."""

    def sweep_of(self, job_id: str) -> str | None:
        """The id of the job's remedies sweep, if one was launched (and not expired)."""

    def begin_launch(self, job_id: str, ttl_s: float) -> str | None:
        """Take the job's launch lock for ``ttl_s``: its token, or None while another holds it."""

    def end_launch(self, job_id: str, token: str, sweep_id: str | None) -> None:
        """Release the lock of ``token``; with ``sweep_id``, link it to the job first."""


def remedy_links_from_client(client: redis.Redis, settings: Settings) -> RedisRemedyLinks:
    """The links on an existing connection pool (the job store's: same Redis)."""
    return RedisRemedyLinks(client, prefix=settings.key_prefix,
                            retention_seconds=settings.retention_seconds)


def remedy_links_from_settings(settings: Settings) -> RedisRemedyLinks:
    return remedy_links_from_client(connect(settings), settings)


class RedisRemedyLinks:
    """``RemedyLinks`` on Redis; see the module docstring for the keys."""

    def __init__(self, client: redis.Redis, *, prefix: str, retention_seconds: int) -> None:
        self._r = client
        self._prefix = prefix
        self._ttl = retention_seconds
        self._end = client.register_script(lua_source("remedies_link"))

    def link_key(self, job_id: str) -> str:
        return f"{self._prefix}:remedies:{job_id}"

    def lock_key(self, job_id: str) -> str:
        return f"{self._prefix}:remedies:{job_id}:launch"

    def sweep_of(self, job_id: str) -> str | None:
        with translate_redis_errors():
            value = cast(str | None, self._r.get(self.link_key(job_id)))
        return value or None

    def begin_launch(self, job_id: str, ttl_s: float) -> str | None:
        token = uuid.uuid4().hex
        with translate_redis_errors():
            taken = self._r.set(self.lock_key(job_id), token, nx=True,
                                px=max(1, int(ttl_s * 1000)))
        return token if taken else None

    def end_launch(self, job_id: str, token: str, sweep_id: str | None) -> None:
        with translate_redis_errors():
            self._end(keys=[self.link_key(job_id), self.lock_key(job_id)],
                      args=[self._ttl, token, sweep_id or ""])
