"""The one codec of the stores in worker/jobs: records to hash fields and back, and cursors.

Redis hash fields are strings, so every value is written one way and read back one way:

- JSON values compact and strict (``dumps``: no NaN or infinity, ``JobStoreError`` otherwise);
- times as ISO 8601 with their UTC offset (``format_time`` / ``parse_time``);
- an absent optional field as the empty string or no field at all (read back as ``None``).

Cursors name the position of the last item of a page, in a form a pattern describes exactly
(``JOB_CURSOR_PATTERN``, ``SWEEP_CURSOR_PATTERN``; the OpenAPI document carries them), so that
every cursor the schema accepts is one the server accepts: a job cursor is
``{order}.{job_id}``, a sweep cursor ``s{order}``. Any other string is ``InvalidCursor`` (a
422, also before it reaches the store: the query parameter has the pattern).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, cast

from worker.core.errors import InvalidCursor, JobStoreError
from worker.jobs.records import (
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
    "owner", "tags", "sweep_id", "headline", "top_finding",
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
    tags: Sequence[str] = (),
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
    if tags:
        fields["tags"] = dumps(list(tags))
    return fields


def verdict_fields(result: Mapping[str, Any]) -> dict[str, str]:
    """What a listing shows of a result, kept beside it: the headline and the first (most
    severe) finding as ``[code, severity]``."""
    fields = {"headline": str(result.get("headline") or "")}
    found = result.get("findings")
    if isinstance(found, list) and found and isinstance(found[0], Mapping):
        fields["top_finding"] = dumps([str(found[0].get("code")),
                                       str(found[0].get("severity"))])
    return fields


def _pair(value: str | None) -> tuple[str, str] | None:
    if not value:
        return None
    code, severity = json.loads(value)
    return str(code), str(severity)


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
        "tags": tuple(json.loads(raw["tags"])) if raw.get("tags") else (),
        "sweep_id": raw.get("sweep_id") or None,
        "headline": raw.get("headline") or None,
        "top_finding": _pair(raw.get("top_finding")),
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
        callback_url=raw.get("callback_url") or None,
        cancel_requested=raw.get("cancel_requested") == "1",
        webhook=json.loads(raw["webhook"]) if raw.get("webhook") else None,
        mlflow=json.loads(raw["mlflow"]) if raw.get("mlflow") else None,
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
        "tags": dumps(list(record.tags)),
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
        tags=tuple(json.loads(raw["tags"])) if raw.get("tags") else (),
    )


# --- cursors -----------------------------------------------------------------------------


#: A job cursor: the order of the last job of the page and its id.
JOB_CURSOR_PATTERN: Final = r"^[0-9]{1,20}\.[0-9a-f]{32}$"
#: A sweep cursor: ``s`` and the order of the last sweep of the page.
SWEEP_CURSOR_PATTERN: Final = r"^s[0-9]{1,20}$"
_JOB_CURSOR = re.compile(JOB_CURSOR_PATTERN)
_SWEEP_CURSOR = re.compile(SWEEP_CURSOR_PATTERN)


def encode_job_cursor(order: int, job_id: str) -> str:
    """The cursor after the job at (``order``, ``job_id``)."""
    return f"{order}.{job_id}"


def decode_job_cursor(cursor: str) -> tuple[int, str]:
    """(order, job id) of a job cursor, or ``InvalidCursor``."""
    if not _JOB_CURSOR.match(cursor):
        raise InvalidCursor()
    order, _, job_id = cursor.partition(".")
    return int(order), job_id


def encode_sweep_cursor(order: int) -> str:
    """The cursor after the sweep at ``order``."""
    return f"s{order}"


def decode_sweep_cursor(cursor: str) -> int:
    """The order of a sweep cursor, or ``InvalidCursor``."""
    if not _SWEEP_CURSOR.match(cursor):
        raise InvalidCursor()
    return int(cursor[1:])
