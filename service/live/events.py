"""Server-sent events of one experiment: live progress, status changes, the end.

The stream (``text/event-stream``) sends, in order::

    retry: 3000
    event: status     data: {"id", "status", "attempts", "worker", "cancel_requested", "error",
                             "updated_at"}                      whenever one of these changes
    event: progress   data: {"step", "total_steps", "epoch", "train_loss", "elapsed_s",
                             "eta_s"}                           whenever progress is written
    : keep-alive                                                every sse_heartbeat_s
    event: end        data: {"id", "status", "attempts", "error", "finished_at", "summary"}

and closes after ``end`` (the job reached a final state). The current state comes first, so a
client that reconnects (EventSource does, after ``retry``) loses nothing it needs. If the
job disappears (deleted, expired) the stream sends ``event: error`` and closes; so it does if
Redis goes away mid-stream (a reconnect then gets a 503 with Retry-After until Redis is back).

How it waits: the worker's writes publish a word on ``{prefix}:events:{id}`` (the job store's
Lua scripts); the stream sleeps on that channel and re-reads the job's few small fields when
woken, or at least every ``sse_poll_s`` (a message published while Redis restarted is lost;
the poll catches up). No thread is held per client (``redis.asyncio``).
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any, cast

import redis.asyncio
from redis.asyncio.client import PubSub

from worker.core.errors import JobNotFound, TrainabilityError
from worker.jobs.redis_conn import translate_redis_errors
from worker.jobs.store import FINAL_STATUSES, JOB_ID_RE, RedisJobStore

_FIELDS = ("status", "attempts", "worker", "cancel_requested", "error", "updated_at",
           "finished_at", "progress", "owner")
#: A ``status`` event is sent when one of these changes (not on every progress write).
_STATUS_FIELDS = ("status", "attempts", "worker", "cancel_requested", "error")


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    """One event in the text/event-stream format (data is one JSON line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


class ExperimentEvents:
    """The event stream of one job: ``open()`` (may raise), then iterate ``events()``."""

    def __init__(self, client: redis.asyncio.Redis, store: RedisJobStore, job_id: str, *,
                 heartbeat_s: float, poll_s: float) -> None:
        self._client = client
        self._store = store
        self._job_id = job_id
        self._heartbeat_s = heartbeat_s
        self._poll_s = poll_s
        self._pubsub: PubSub | None = None
        self._first: dict[str, Any] | None = None
        self._seq = 0

    async def _read(self) -> dict[str, Any] | None:
        with translate_redis_errors():
            values = await self._client.hmget(self._store.job_key(self._job_id), _FIELDS)
        state = dict(zip(_FIELDS, values, strict=True))
        if state["status"] is None:
            return None
        return state

    async def open(self) -> dict[str, Any]:
        """Subscribe, then read the job (in this order: no write falls in between).

        ``JobNotFound`` / ``StoreUnavailable`` here become a 404 / 503 before streaming.
        Returns the job's first state (its ``owner`` decides who may see it).
        """
        if not JOB_ID_RE.match(self._job_id):
            raise JobNotFound(self._job_id)
        pubsub = self._client.pubsub()
        try:
            with translate_redis_errors():
                await pubsub.subscribe(self._store.events_channel(self._job_id))
            state = await self._read()
        except BaseException:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        if state is None:
            await pubsub.aclose()  # type: ignore[no-untyped-call]
            raise JobNotFound(self._job_id)
        self._pubsub, self._first = pubsub, state
        return state

    async def close(self) -> None:
        if self._pubsub is not None:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            self._pubsub = None

    def _event(self, name: str, data: Any) -> str:
        self._seq += 1
        return sse(name, data, self._seq)

    async def _full_result_summary(self) -> dict[str, Any] | None:
        with translate_redis_errors():
            raw = await self._client.hget(self._store.job_key(self._job_id), "result")
        result = json.loads(raw) if raw else None
        summary = result.get("summary") if isinstance(result, dict) else None
        return cast(dict[str, Any] | None, summary)

    async def events(self) -> AsyncIterator[str]:
        """The stream's text chunks; closes the subscription however it ends."""
        assert self._pubsub is not None and self._first is not None, "call open() first"
        pubsub, state = self._pubsub, self._first
        last_status: tuple[Any, ...] | None = None
        last_progress: str | None = None
        next_beat = time.monotonic() + self._heartbeat_s
        try:
            yield "retry: 3000\n\n"
            while True:
                status = tuple(state[k] for k in _STATUS_FIELDS)
                if status != last_status:
                    last_status = status
                    yield self._event("status", self._status(state))
                if state["progress"] not in (None, "null") and state["progress"] != last_progress:
                    last_progress = state["progress"]
                    yield self._event("progress", json.loads(state["progress"]))
                if state["status"] in FINAL_STATUSES:
                    yield self._event("end", {
                        **{k: v for k, v in self._status(state).items()
                           if k in ("id", "status", "attempts", "error")},
                        "finished_at": state["finished_at"],
                        "summary": await self._full_result_summary(),
                    })
                    return
                # Sleep until a write is published, the poll interval, or the heartbeat.
                deadline = time.monotonic() + self._poll_s
                while True:
                    now = time.monotonic()
                    if now >= next_beat:
                        yield ": keep-alive\n\n"
                        next_beat = now + self._heartbeat_s
                    wait = min(deadline, next_beat) - now
                    if wait <= 0:
                        break
                    with translate_redis_errors():
                        message = await pubsub.get_message(ignore_subscribe_messages=True,
                                                           timeout=wait)
                    if message is not None:
                        break
                read = await self._read()
                if read is None:
                    yield self._event("error", {"detail": "the experiment was deleted or "
                                                          "expired"})
                    return
                state = read
        except TrainabilityError as exc:
            yield self._event("error", {"detail": f"event stream interrupted: "
                                                  f"{type(exc).__name__}; reconnect"})
        finally:
            await self.close()

    def _status(self, state: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": self._job_id,
            "status": state["status"],
            "attempts": int(state["attempts"] or 0),
            "worker": state["worker"] or None,
            "cancel_requested": state["cancel_requested"] == "1",
            "error": state["error"] or None,
            "updated_at": state["updated_at"],
        }
