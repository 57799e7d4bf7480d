"""The job store's reads over many jobs: its indexes (sorted sets) with the hashes they name.

Part of the Redis adapter (``RedisJobStore`` delegates to ``JobIndexes``): listing pages,
the running and queued jobs the reaper looks at, the webhook outbox, the counts for
``/metrics``, and the sweep of index entries whose job hash expired. These are plain reads
(pipelined), not scripts: an entry read while its job moves is re-checked by the script that
acts on it. The layout is ``worker/jobs/redis_layout.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, cast

import redis

from worker.jobs import codec
from worker.jobs.records import STATUSES, JobFilter, JobSummary, RunningJob, StoreSnapshot
from worker.jobs.redis_conn import translate_redis_errors
from worker.jobs.redis_layout import JobKeys

_SCAN_CHUNK: Final = 100


class JobIndexes:
    """Reads over the job indexes of one store (``keys``) on ``client``."""

    def __init__(self, client: redis.Redis, keys: JobKeys) -> None:
        self._r = client
        self._keys = keys

    def page(
        self, index: str, *, after: tuple[int, str] | None, limit: int, keep: JobFilter,
        lowest: int | None = None,
    ) -> list[tuple[int, JobSummary]]:
        """Up to ``limit + 1`` (order, summary) pairs of ``index`` below ``after`` (and at or
        above the order ``lowest``), newest first, that ``keep`` matches; ids whose job
        expired are dropped from the indexes."""
        keys = self._keys
        top: str | int = "+inf" if after is None else after[0]
        bottom: str | int = "-inf" if lowest is None else lowest
        found: list[tuple[int, JobSummary]] = []
        offset = 0
        with translate_redis_errors():
            while len(found) <= limit:
                rows = cast(list[tuple[str, float]], self._r.zrange(
                    index, top, bottom, desc=True, byscore=True, withscores=True,
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
                    pipe.hmget(keys.job_key(member), codec.SUMMARY_FIELDS)
                expired: list[str] = []
                for (member, score), values in zip(candidates, pipe.execute(), strict=True):
                    raw = {k: v for k, v in zip(codec.SUMMARY_FIELDS, values, strict=True) if v}
                    if "status" not in raw:
                        expired.append(member)
                    elif keep.matches(summary := codec.job_summary(raw)):
                        found.append((score, summary))
                if expired:
                    self.forget(expired, also=[index])
                    offset -= len(expired)  # they were in this index, before the offset
        return found

    def forget(self, job_ids: Sequence[str], *, also: Sequence[str] = ()) -> None:
        """Remove ids from every index (their job hashes are gone), and from ``also``."""
        pipe = self._r.pipeline(transaction=False)
        for index in dict.fromkeys([*self._keys.all_index_keys(), *also]):
            pipe.zrem(index, *job_ids)
        pipe.execute()

    def running(self) -> list[RunningJob]:
        """Every running job, with whether its lease is alive."""
        keys = self._keys
        with translate_redis_errors():
            ids = cast(list[str], self._r.zrange(keys.index_key("running"), 0, -1))
            pipe = self._r.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(keys.job_key(job_id), ("status", "attempts", "queue", "worker"))
                pipe.exists(keys.lease_key(job_id))
            replies = pipe.execute()
        out = []
        for i, job_id in enumerate(ids):
            status, attempts, queue, worker = replies[2 * i]
            if status == "running":
                out.append(RunningJob(id=job_id, attempt=int(attempts or 0), queue=queue or "",
                                      worker=worker or None,
                                      lease_alive=bool(replies[2 * i + 1])))
        return out

    def queued(self, created_before: float | None = None) -> list[tuple[str, str, str]]:
        """Queued jobs (created before ``created_before``, unix seconds on the Redis clock):
        (id, queue, queued_ts on the Redis clock as stored)."""
        keys = self._keys
        top = "+inf" if created_before is None else int(created_before * 1_000_000)
        with translate_redis_errors():
            ids = cast(list[str], self._r.zrange(keys.index_key("queued"), "-inf", top,
                                                 byscore=True))
            pipe = self._r.pipeline(transaction=False)
            for job_id in ids:
                pipe.hmget(keys.job_key(job_id), ("status", "queue", "queued_ts"))
            replies = pipe.execute()
        return [
            (job_id, queue or "", queued_ts or "0")
            for job_id, (status, queue, queued_ts) in zip(ids, replies, strict=True)
            if status == "queued"
        ]

    def prune(self) -> int:
        """Drop index entries whose job expired; how many jobs were dropped."""
        keys = self._keys
        dropped: set[str] = set()
        with translate_redis_errors():
            filter_indexes = [key for pattern in keys.filter_index_patterns()
                              for key in self._r.scan_iter(pattern, count=500)]
            for index in [*keys.all_index_keys(), *filter_indexes, keys.outbox_key()]:
                start = 0
                while True:
                    members = cast(
                        list[str], self._r.zrange(index, start, start + _SCAN_CHUNK - 1)
                    )
                    if not members:
                        break
                    pipe = self._r.pipeline(transaction=False)
                    for member in members:
                        pipe.exists(keys.job_key(member))
                    gone = [m for m, n in zip(members, pipe.execute(), strict=True) if not n]
                    if gone:
                        pipe = self._r.pipeline(transaction=False)
                        for key in [*keys.all_index_keys(), index]:
                            pipe.zrem(key, *gone)
                        pipe.execute()
                        dropped.update(gone)
                    start += len(members) - len(gone)
        return len(dropped)

    def outbox(self, *, before: float) -> list[str]:
        """Jobs of the webhook outbox whose last delivery activity is older than ``before``
        (Redis clock), at most 1000."""
        with translate_redis_errors():
            return cast(list[str], self._r.zrange(
                self._keys.outbox_key(), "-inf", before, byscore=True, offset=0, num=1000
            ))

    def mlflow_outbox(self, *, before: float) -> list[str]:
        """Jobs whose MLflow export saw no activity since ``before`` (Redis clock), at most
        1000."""
        with translate_redis_errors():
            return cast(list[str], self._r.zrange(
                self._keys.mlflow_outbox_key(), "-inf", before, byscore=True, offset=0,
                num=1000,
            ))

    def snapshot(self) -> StoreSnapshot:
        """Jobs per status (index sizes) and the duration histogram."""
        keys = self._keys
        with translate_redis_errors():
            pipe = self._r.pipeline(transaction=False)
            for status in STATUSES:
                pipe.zcard(keys.index_key(status))
            pipe.hgetall(keys.histogram_key())
            *counts, hist = pipe.execute()
        durations: dict[str, dict[str, float]] = {}
        for name, value in cast(dict[str, str], hist).items():
            final, _, bucket = name.partition("|")
            durations.setdefault(final, {})[bucket] = float(value)
        return StoreSnapshot(jobs=dict(zip(STATUSES, counts, strict=True)), durations=durations)
