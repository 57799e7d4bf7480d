"""The one codec of the stores in worker/jobs: records to hash fields and back, and cursors.

Redis hash fields are strings, so every value is written one way and read back one way:

- JSON values compact and strict (``dumps``: no NaN or infinity, ``JobStoreError`` otherwise);
- times as ISO 8601 with their UTC offset (``format_time`` / ``parse_time``);
- an absent optional field as the empty string or no field at all (read back as ``None``).

Cursors are opaque to clients: base64url (unpadded) of a small JSON list naming the position
of the last item of a page. A job cursor is ``[order, job_id]``; a sweep cursor
``["s", order]``. A cursor we did not issue is ``InvalidCursor`` (a 422).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, cast

from worker.core.errors import InvalidCursor, JobStoreError
from worker.jobs.records import (
    JOB_ID_RE,
    JobRecord,
    JobStatus,
    JobSummary,
    LiveState,
    SweepPoint,
    SweepRecord,
)

#: The job hash fields a listing reads (``job_summary``).
SUMMARY_FIELDS: Final = (
    "id", "status", "name", "created_at", "updated_at", "started_at", "finished_at", "attempts",
    "owner",
)
#: The job hash fields a live event stream reads (``live_state``).
LIVE_FIELDS: Final = (
    "status", "attempts", "worker", "cancel_requested", "error", "updated_at", "finished_at",
    "progress", "owner",
)


# --- values ------------------------------------------------------------------------------


def dumps(value: Any) -> str:
    """Compact, strict JSON; ``JobStoreError`` for a value JSON cannot carry (NaN, objects)."""
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError) as exc:
        raise JobStoreError(f"value is not JSON-safe: {exc}") from exc


def format_time(value: datetime) -> str:
    return value.isoformat()


def parse_time(value: str | None) -> datetime | None:
    """A stored time, or ``None`` for an absent or empty field."""
    return datetime.fromisoformat(value) if value else None


def _required_time(raw: Mapping[str, str], name: str) -> datetime:
    return datetime.fromisoformat(raw[name])


# --- job records -------------------------------------------------------------------------


def new_job_fields(
    job_id: str, spec_json: str, *, queue: str, now: datetime, name: str | None,
    sweep_id: str | None, owner: str | None, callback_url: str | None,
) -> dict[str, str]:
    """The hash of a new ``queued`` job (the store adds ``order`` and ``queued_ts``)."""
    stamp = format_time(now)
    fields = {
        "id": job_id, "status": "queued", "spec": spec_json, "queue": queue,
        "created_at": stamp, "updated_at": stamp, "attempts": "0",
        "progress": "null", "result": "null",
    }
    optional = {"name": name, "sweep_id": sweep_id, "owner": owner, "callback_url": callback_url}
    fields.update({k: v for k, v in optional.items() if v is not None})
    return fields


def _summary_fields(raw: Mapping[str, str]) -> dict[str, Any]:
    return {
        "id": raw["id"],
        "status": raw["status"],
        "name": raw.get("name") or None,
        "created_at": _required_time(raw, "created_at"),
        "updated_at": _required_time(raw, "updated_at"),
        "started_at": parse_time(raw.get("started_at")),
        "finished_at": parse_time(raw.get("finished_at")),
        "attempts": int(raw.get("attempts", "0")),
        "owner": raw.get("owner") or None,
    }


def job_summary(raw: Mapping[str, str]) -> JobSummary:
    """A listing's view of a job hash (at least ``SUMMARY_FIELDS``)."""
    return JobSummary(**_summary_fields(raw))


def job_record(raw: Mapping[str, str]) -> JobRecord:
    """The whole record of a job hash."""
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


def live_state(raw: Mapping[str, str | None]) -> LiveState | None:
    """The event stream's view of a job hash (``LIVE_FIELDS``); ``None``: no such job."""
    status = raw.get("status")
    if status is None:
        return None
    progress = raw.get("progress")
    return LiveState(
        status=cast(JobStatus, status),  # written only by the store's scripts
        attempts=int(raw.get("attempts") or 0),
        worker=raw.get("worker") or None,
        cancel_requested=raw.get("cancel_requested") == "1",
        error=raw.get("error") or None,
        updated_at=parse_time(raw.get("updated_at")),
        finished_at=parse_time(raw.get("finished_at")),
        progress=json.loads(progress) if progress else None,
        owner=raw.get("owner") or None,
    )


# --- sweep records -----------------------------------------------------------------------


def sweep_fields(record: SweepRecord) -> dict[str, str]:
    """The hash of a sweep (the store adds ``order``); ``jobs:{i}``: point i's job ids."""
    fields: dict[str, str] = {
        "id": record.id,
        "name": record.name or "",
        "mode": record.mode,
        "base": dumps(record.base),
        "axes": dumps(record.axes),
        "variants": dumps(record.variants),
        "points": dumps([p.values for p in record.points]),
        "created_at": format_time(record.created_at),
        "updated_at": format_time(record.updated_at),
        "owner": record.owner or "",
    }
    for p in record.points:
        fields[sweep_jobs_field(p.index)] = " ".join(p.job_ids)
    return fields


def sweep_jobs_field(point: int) -> str:
    return f"jobs:{point}"


def sweep_record(raw: Mapping[str, str]) -> SweepRecord:
    values: list[dict[str, Any]] = json.loads(raw["points"])
    points = [
        SweepPoint(index=i, values=v, job_ids=raw.get(sweep_jobs_field(i), "").split())
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
        created_at=_required_time(raw, "created_at"),
        updated_at=_required_time(raw, "updated_at"),
        owner=raw.get("owner") or None,
    )


# --- cursors -----------------------------------------------------------------------------


def _encode_position(position: list[int | str], *, separators: tuple[str, str] = (",", ":")) -> str:
    raw = json.dumps(position, separators=separators).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_position(cursor: str) -> Any:
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, ValueError, TypeError) as exc:
        raise InvalidCursor() from exc


def encode_job_cursor(order: int, job_id: str) -> str:
    """The cursor after the job at (``order``, ``job_id``)."""
    return _encode_position([order, job_id])


def decode_job_cursor(cursor: str) -> tuple[int, str]:
    """(order, job id) of a job cursor, or ``InvalidCursor``."""
    try:
        order, job_id = _decode_position(cursor)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor() from exc
    if not (isinstance(order, int) and isinstance(job_id, str) and JOB_ID_RE.match(job_id)):
        raise InvalidCursor()
    return order, job_id


def encode_sweep_cursor(order: int) -> str:
    """The cursor after the sweep at ``order``."""
    # json's default separators: sweep cursors have always been written so (byte for byte)
    return _encode_position(["s", order], separators=(", ", ": "))


def decode_sweep_cursor(cursor: str) -> int:
    """The order of a sweep cursor, or ``InvalidCursor``."""
    try:
        tag, order = _decode_position(cursor)
    except (ValueError, TypeError) as exc:
        raise InvalidCursor() from exc
    if tag != "s" or not isinstance(order, int):
        raise InvalidCursor()
    return order
