"""``JobStore`` on Redis (``RedisJobStore``), and ``store_from_settings``.

The key layout and the Lua scripts are ``worker/jobs/redis_layout.py`` (and ``lua/``); how
records are written is ``worker/jobs/codec.py``; reads over many jobs (pages, the reaper's
views, pruning, counts) are ``worker/jobs/redis_indexes.py``; the asynchronous view for event
streams is ``worker/jobs/redis_feed.py``. Every Redis call runs inside
``translate_redis_errors``, so callers see domain errors only.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, cast

import redis

from worker.core.errors import (
    JobNotFound,
    JobStateConflict,
)
from worker.core.settings import Settings
from worker.jobs import codec
from worker.jobs.records import (
    ALLOWED_FROM,
    CANCEL_QUEUED_REASON,
    CANCEL_REASON,
    FINAL_STATUSES,
    JOB_ID_RE,
    Claim,
    ClaimOutcome,
    FinalStatus,
    JobFilter,
    JobPage,
    JobRecord,
    JobStatus,
    LeaseAnswer,
    ReapOutcome,
    RunningJob,
    StoreSnapshot,
    exhausted_reason,
    utcnow,
)
from worker.jobs.redis_conn import connect, translate_redis_errors
from worker.jobs.redis_create import CreateCall, create_call
from worker.jobs.redis_indexes import JobIndexes
from worker.jobs.redis_layout import JOB_SCRIPTS, JobKeys, job_script
from worker.jobs.redis_retention import keep_alive
from worker.jobs.result_size import fit_result

#: How far apart the API's clock (``created_at``) and Redis's (``order``) may be: a
#: ``created_after`` listing stops scanning this much before it.
CLOCK_SKEW_S = 300


def store_from_settings(settings: Settings) -> RedisJobStore:
    """The Redis job store configured by ``settings`` (one connection pool)."""
    return RedisJobStore(
        connect(settings), prefix=settings.key_prefix, retention_seconds=settings.retention_seconds,
        max_result_bytes=settings.max_result_bytes,
    )


class RedisJobStore(JobKeys):
    """``JobStore`` on Redis. Its key names (``JobKeys``) are its own and its tests'; callers
    use the ``JobStore`` methods only."""

    def __init__(self, client: redis.Redis, *, prefix: str, retention_seconds: int,
                 max_result_bytes: int | None = None) -> None:
        super().__init__(prefix)
        self._r = client
        self._ttl = retention_seconds
        self._max_result_bytes = max_result_bytes  # None: no limit (worker/jobs/result_size.py)
        self._scripts = {name: client.register_script(job_script(name)) for name in JOB_SCRIPTS}
        self._indexes = JobIndexes(client, self)

    @property
    def client(self) -> redis.Redis:
        """The connection pool (for the process wiring it up: share it, do not read keys)."""
        return self._r

    def _run(self, script: str, job_id: str, params: dict[str, Any], *extra: str) -> Any:
        keys, args = self.script_args(job_id, self._ttl, params, *extra)
        with translate_redis_errors():
            return self._scripts[script](keys=keys, args=args)

    # --- JobStore: the API ---------------------------------------------------------------

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
        max_active: int | None = None, tags: Sequence[str] = (),
    ) -> JobRecord:
        record, _ = self._create_job(create_call(
            self, self._ttl, spec_json, name=name, queue=queue, sweep_id=sweep_id,
            owner=owner, callback_url=callback_url, max_active=max_active, tags=tags,
        ))
        return record

    def create_idempotent(
        self, spec_json: str, *, name: str | None, queue: str, idempotency_key: str,
        fingerprint: str, ttl_s: int, owner: str | None = None,
        callback_url: str | None = None, max_active: int | None = None,
        sweep_id: str | None = None, tags: Sequence[str] = (),
    ) -> tuple[JobRecord, bool]:
        return self._create_job(create_call(
            self, self._ttl, spec_json, name=name, queue=queue, sweep_id=sweep_id,
            owner=owner, callback_url=callback_url, max_active=max_active, tags=tags,
            idempotency=(idempotency_key, fingerprint, ttl_s),
        ))

    def _create_job(self, call: CreateCall) -> tuple[JobRecord, bool]:
        with translate_redis_errors():
            reply = cast(list[str], self._scripts["create"](keys=call.keys, args=call.args))
        made = call.outcome(reply)
        if isinstance(made, str):
            return self.get(made), False
        return made, True

    def get(self, job_id: str) -> JobRecord:
        if not JOB_ID_RE.match(job_id):
            raise JobNotFound(job_id)
        with translate_redis_errors():
            raw = cast(dict[str, str], self._r.hgetall(self.job_key(job_id)))
        if not raw:
            raise JobNotFound(job_id)
        return codec.job_record(raw)

    def list_jobs(
        self, *, status: JobStatus | None = None, limit: int = 20, cursor: str | None = None,
        owner: str | None = None, tags: Sequence[str] = (), sweep_id: str | None = None,
        created_after: datetime | None = None,
    ) -> JobPage:
        if limit < 1:
            raise ValueError("limit must be positive")
        after = codec.decode_job_cursor(cursor) if cursor is not None else None
        keep = JobFilter(status=status, owner=owner, tags=tuple(tags), sweep_id=sweep_id,
                         created_after=created_after)
        # The narrowest index that holds every match; the other conditions are read per job.
        if sweep_id is not None:
            index = self.sweep_index_key(sweep_id)
        elif tags:
            index = self.tag_index_key(tags[0])
        else:
            index = self.owner_index_key(owner) if owner is not None else self.index_key(status)
        lowest = None
        if created_after is not None:  # order is µs on the Redis clock: allow for clock skew
            lowest = int((created_after.timestamp() - CLOCK_SKEW_S) * 1_000_000)
        found = self._indexes.page(index, after=after, limit=limit, keep=keep, lowest=lowest)
        page = [summary for _, summary in found[:limit]]
        next_cursor = None
        if len(found) > limit:
            score, last = found[limit - 1]
            next_cursor = codec.encode_job_cursor(score, last.id)
        return JobPage(items=page, next_cursor=next_cursor)

    def request_cancel(self, job_id: str) -> JobStatus:
        if not JOB_ID_RE.match(job_id):
            raise JobNotFound(job_id)
        reply = cast(list[str], self._run("cancel", job_id, {
            "now_iso": utcnow().isoformat(), "queued_reason": CANCEL_QUEUED_REASON,
        }))
        if reply[0] == "missing":
            raise JobNotFound(job_id)
        if reply[0] == "conflict":
            raise JobStateConflict(job_id, reply[1], "cancelled", "it has already ended")
        return "cancelled" if reply[0] == "cancelled" else cast(JobStatus, reply[1])

    def delete(self, job_id: str) -> None:
        if not JOB_ID_RE.match(job_id):
            raise JobNotFound(job_id)
        with translate_redis_errors():
            owner, tags, sweep_id = cast(list[str | None], self._r.hmget(
                self.job_key(job_id), ("owner", "tags", "sweep_id")))
        keys = self.job_index_keys(owner=owner, tags=json.loads(tags) if tags else [],
                                   sweep_id=sweep_id)
        reply = cast(list[str], self._run("delete", job_id, {}, *keys))
        if reply[0] == "missing":
            raise JobNotFound(job_id)
        if reply[0] == "conflict":
            raise JobStateConflict(job_id, reply[1], "deleted", "only a final job can be deleted")

    # --- JobStore: an attempt ------------------------------------------------------------

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
        now = utcnow().isoformat()
        reply = cast(list[str], self._run("claim", job_id, {
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

    def renew_lease(
        self, job_id: str, *, attempt: int, lease: str, lease_ttl_s: float
    ) -> LeaseAnswer:
        return cast(LeaseAnswer, self._run("renew_lease", job_id, {
            "attempt": attempt, "lease": lease, "lease_ms": int(lease_ttl_s * 1000),
        }))

    def lease(self, job_id: str) -> str | None:
        with translate_redis_errors():
            return cast(str | None, self._r.get(self.lease_key(job_id)))

    def is_cancel_requested(self, job_id: str) -> bool:
        with translate_redis_errors():
            return self._r.hget(self.job_key(job_id), "cancel_requested") == "1"

    def update_progress(self, job_id: str, progress: dict[str, Any], *, attempt: int) -> bool:
        return bool(self._run("progress", job_id, {
            "progress": codec.dumps(progress), "now_iso": utcnow().isoformat(),
            "attempt": attempt,
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
            if self._max_result_bytes is not None:  # a larger one is stored cut, with a note
                result = fit_result(result, self._max_result_bytes)
            fields["result"] = codec.dumps(result)
            fields.update(codec.verdict_fields(result))
        if error is not None:
            fields["error"] = error
        if progress is not None:
            fields["progress"] = codec.dumps(progress)
        self._move(job_id, status, fields=fields, attempt=attempt)

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
        reply = cast(list[str], self._run("transition", job_id, params))
        if reply[0] == "missing":
            raise JobNotFound(job_id)
        if reply[0] == "conflict":
            raise JobStateConflict(job_id, reply[1], new)
        if reply[0] == "stale":
            raise JobStateConflict(
                job_id, reply[1], new, f"attempt {attempt} was superseded by attempt {reply[2]}"
            )

    # --- JobStore: the reaper ------------------------------------------------------------

    def reap(self, job_id: str, *, attempt: int, max_attempts: int, lost_after_s: float,
             worker: str | None = None) -> ReapOutcome:
        who = f" on {worker}" if worker else ""
        return cast(ReapOutcome, self._run("reap", job_id, {
            "attempt": attempt, "max_attempts": max_attempts, "now_iso": utcnow().isoformat(),
            "cancel_reason": f"{CANCEL_REASON}; its worker was lost before it stopped",
            "exhausted_reason": exhausted_reason(max_attempts),
            "lost_reason": f"attempt {attempt}{who} was lost (no heartbeat for "
                           f"{lost_after_s:g} s); re-queued",
        }))

    def running_jobs(self) -> list[RunningJob]:
        return self._indexes.running()

    def queued_jobs(self, created_before: float | None = None) -> list[tuple[str, str, str]]:
        return self._indexes.queued(created_before)

    def touch_queued(self, job_id: str, queued_ts: str) -> bool:
        return bool(self._run("touch_queued", job_id, {"queued_ts": queued_ts}))

    def prune_index(self) -> int:
        return self._indexes.prune()

    def keep_alive(self, job_ids: list[str]) -> int:
        return keep_alive(self._r, self, job_ids, ttl_s=self._ttl)

    # --- JobStore: webhooks and metrics --------------------------------------------------

    def set_webhook_state(self, job_id: str, state: dict[str, Any], *, pending: bool) -> None:
        self._run("webhook", job_id, {"id": job_id, "state": codec.dumps(state),
                                      "pending": pending})

    def webhook_outbox(self, idle_for_s: float) -> list[str]:
        return self._indexes.outbox(before=self.redis_time() - idle_for_s)

    # --- JobStore: MLflow exports -------------------------------------------------------

    def set_mlflow_state(self, job_id: str, state: dict[str, Any], *, pending: bool) -> bool:
        return bool(self._run("mlflow", job_id, {"id": job_id, "state": codec.dumps(state),
                                                 "pending": pending},
                              self.mlflow_outbox_key()))

    def mlflow_outbox(self, idle_for_s: float) -> list[str]:
        return self._indexes.mlflow_outbox(before=self.redis_time() - idle_for_s)

    def snapshot(self) -> StoreSnapshot:
        return self._indexes.snapshot()
