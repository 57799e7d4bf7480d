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

How it waits (``worker.jobs.store.JobFeed``): every write of the job wakes the stream (the
job store publishes a word per write); the stream sleeps until then and re-reads the job's few
small fields when woken, or at least every ``sse_poll_s`` (a wake-up published while Redis
restarted is lost; the poll catches up). No thread is held per client (the feed is async), and
the feed shares one pub/sub connection among every stream of the process.

How many (``StreamLimits``): one API key (with auth off, one client address) holds at most
``sse_max_streams_per_key`` streams in this process (one more is a 429 with Retry-After), and
the process at most ``sse_max_streams`` (then a 503): one client cannot take live events from
everyone.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, cast

from worker.core.errors import JobNotFound, TrainabilityError, Unavailable
from worker.jobs.records import JOB_ID_RE, LiveState
from worker.jobs.store import JobFeed, JobWatch


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    """One event in the text/event-stream format (data is one JSON line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n"


def _iso(value: datetime | None) -> str | None:
    """A time as the job store wrote it (ISO 8601; round-trips exactly)."""
    return value.isoformat() if value is not None else None


def _status_key(state: LiveState) -> tuple[Any, ...]:
    """A ``status`` event is sent when one of these changes (not on every progress write)."""
    return (state.status, state.attempts, state.worker, state.cancel_requested, state.error)


class ExperimentEvents:
    """The event stream of one job: ``open()`` (may raise), then iterate ``events()``."""

    def __init__(self, feed: JobFeed, job_id: str, *, heartbeat_s: float,
                 poll_s: float) -> None:
        self._feed = feed
        self._job_id = job_id
        self._heartbeat_s = heartbeat_s
        self._poll_s = poll_s
        self._watch: JobWatch | None = None
        self._first: LiveState | None = None
        self._seq = 0

    async def open(self) -> LiveState:
        """Subscribe, then read the job (in this order: no write falls in between).

        ``JobNotFound`` / ``StoreUnavailable`` here become a 404 / 503 before streaming.
        Returns the job's first state (its ``owner`` decides who may see it).
        """
        if not JOB_ID_RE.match(self._job_id):
            raise JobNotFound(self._job_id)
        watch = await self._feed.watch(self._job_id)
        try:
            state = await self._feed.live_state(self._job_id)
        except BaseException:
            await watch.close()
            raise
        if state is None:
            await watch.close()
            raise JobNotFound(self._job_id)
        self._watch, self._first = watch, state
        return state

    async def close(self) -> None:
        if self._watch is not None:
            await self._watch.close()
            self._watch = None

    def _event(self, name: str, data: Any) -> str:
        self._seq += 1
        return sse(name, data, self._seq)

    async def _result_summary(self) -> dict[str, Any] | None:
        result = await self._feed.result(self._job_id)
        summary = result.get("summary") if isinstance(result, dict) else None
        return cast(dict[str, Any] | None, summary)

    async def events(self) -> AsyncIterator[str]:
        """The stream's text chunks; closes the subscription however it ends."""
        assert self._watch is not None and self._first is not None, "call open() first"
        watch, state = self._watch, self._first
        last_status: tuple[Any, ...] | None = None
        last_progress: dict[str, Any] | None = None
        next_beat = time.monotonic() + self._heartbeat_s
        try:
            yield "retry: 3000\n\n"
            while True:
                status = _status_key(state)
                if status != last_status:
                    last_status = status
                    yield self._event("status", self._status(state))
                if state.progress is not None and state.progress != last_progress:
                    last_progress = state.progress
                    yield self._event("progress", state.progress)
                if state.is_final:
                    yield self._event("end", self._end(state, await self._result_summary()))
                    return
                # Sleep until a write is announced, the poll interval, or the heartbeat.
                deadline = time.monotonic() + self._poll_s
                while True:
                    now = time.monotonic()
                    if now >= next_beat:
                        yield ": keep-alive\n\n"
                        next_beat = now + self._heartbeat_s
                    wait = min(deadline, next_beat) - now
                    if wait <= 0 or await watch.wait(wait):
                        break
                read = await self._feed.live_state(self._job_id)
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

    def _status(self, state: LiveState) -> dict[str, Any]:
        return {
            "id": self._job_id,
            "status": state.status,
            "attempts": state.attempts,
            "worker": state.worker,
            "cancel_requested": state.cancel_requested,
            "error": state.error,
            "updated_at": _iso(state.updated_at),
        }

    def _end(self, state: LiveState, summary: dict[str, Any] | None) -> dict[str, Any]:
        status = self._status(state)
        return {
            **{k: status[k] for k in ("id", "status", "attempts", "error")},
            "finished_at": _iso(state.finished_at),
            "summary": summary,
        }


class TooManyStreams(TrainabilityError):
    """This caller already holds ``limit`` open event streams (429 + Retry-After)."""

    def __init__(self, who: str, limit: int) -> None:
        super().__init__(f"{who} already has {limit} event streams open (sse_max_streams_per_key)"
                         "; close one or poll GET /v1/experiments/{id}")
        self.limit = limit


class StreamsFull(Unavailable):
    """This API process holds ``sse_max_streams`` open event streams (503 + Retry-After)."""


class StreamSlot:
    """One open stream of one caller; ``release`` is idempotent."""

    def __init__(self, limits: StreamLimits, who: str) -> None:
        self._limits: StreamLimits | None = limits
        self._who = who

    def release(self) -> None:
        if self._limits is not None:
            limits, self._limits = self._limits, None
            limits.release(self._who)

    async def guard(self, chunks: AsyncIterator[str]) -> AsyncIterator[str]:
        """``chunks``, releasing the slot however the stream ends."""
        try:
            async for chunk in chunks:
                yield chunk
        finally:
            self.release()


class StreamLimits:
    """Open event streams per caller and in all, in this API process (event-loop only)."""

    def __init__(self, *, per_key: int, total: int) -> None:
        self._per_key = per_key
        self._total = total
        self._open: dict[str, int] = {}

    @property
    def open(self) -> int:
        return sum(self._open.values())

    def acquire(self, who: str) -> StreamSlot:
        if self._open.get(who, 0) >= self._per_key:
            raise TooManyStreams(who, self._per_key)
        if self.open >= self._total:
            raise StreamsFull(f"this API process has {self._total} event streams open")
        self._open[who] = self._open.get(who, 0) + 1
        return StreamSlot(self, who)

    def release(self, who: str) -> None:
        left = self._open.get(who, 0) - 1
        if left > 0:
            self._open[who] = left
        else:
            self._open.pop(who, None)

