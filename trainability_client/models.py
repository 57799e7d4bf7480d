"""What the client returns: small typed views over the service's JSON (``raw`` keeps it all)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled", "timed_out"})


def _time(value: Any) -> datetime | None:
    return datetime.fromisoformat(value) if isinstance(value, str) else None


@dataclass(frozen=True)
class Experiment:
    """An experiment as the service reports it (``result`` once it has ended)."""

    id: str
    status: str
    name: str | None
    attempts: int
    created_at: datetime | None
    finished_at: datetime | None
    progress: dict[str, Any] | None
    result: dict[str, Any] | None
    error: str | None
    sweep_id: str | None
    raw: dict[str, Any] = field(repr=False)

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Experiment:
        return cls(
            id=doc["id"], status=doc["status"], name=doc.get("name"),
            attempts=int(doc.get("attempts", 0)), created_at=_time(doc.get("created_at")),
            finished_at=_time(doc.get("finished_at")), progress=doc.get("progress"),
            result=doc.get("result"), error=doc.get("error"), sweep_id=doc.get("sweep_id"),
            raw=doc,
        )


@dataclass(frozen=True)
class SweepAccepted:
    id: str
    points: int
    job_ids: list[str]
    raw: dict[str, Any] = field(repr=False)
    cohorts: list[list[str]] = field(default_factory=list)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SweepAccepted:
        return cls(id=doc["id"], points=doc["points"], job_ids=list(doc["job_ids"]), raw=doc,
                   cohorts=[list(c) for c in doc.get("cohorts") or []])


def _header(header: str) -> dict[str, str]:
    """Field metadata: a table column of :class:`SweepRow`, with its heading in the CLI."""
    return {"header": header}


@dataclass(frozen=True)
class SweepRow:
    """One point of a sweep's comparison table: the client's one list of its columns (the
    fields with a ``header``, shown in this order by ``trainability sweep``)."""

    point: int
    values: dict[str, Any]
    job_id: str | None
    status: str = field(metadata=_header("status"))
    outcome: str | None = field(metadata=_header("outcome"))
    final_train_loss: float | None = field(metadata=_header("train_loss"))
    final_val_loss: float | None = field(metadata=_header("val_loss"))
    grad_ratio_init: float | None = field(metadata=_header("grad@0"))
    grad_ratio_end: float | None = field(metadata=_header("grad@end"))
    verdict_init: str | None = field(metadata=_header("verdict@0"))
    alignment_mean: float | None = field(metadata=_header("align"))
    mli_largest_bump: float | None = field(metadata=_header("mli_bump"))
    findings_critical: int | None = field(metadata=_header("crit"))
    findings_warning: int | None = field(metadata=_header("warn"))
    findings_info: int | None = field(metadata=_header("info"))
    previous_job_ids: list[str]

    def get(self, column: str) -> Any:
        """A column by name: a varied field (``model.depth``) or a metric."""
        if column in self.values:
            return self.values[column]
        return getattr(self, column)

    @classmethod
    def table_columns(cls) -> list[tuple[str, str]]:
        """(field, heading) of each table column, in display order."""
        return [(f.name, f.metadata["header"]) for f in dataclasses.fields(cls)
                if "header" in f.metadata]

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> SweepRow:
        fields: dict[str, Any] = {k: doc.get(k) for k in cls.__dataclass_fields__}
        fields["values"] = dict(doc.get("values") or {})
        fields["previous_job_ids"] = list(doc.get("previous_job_ids") or [])
        return cls(**fields)


@dataclass(frozen=True)
class Sweep:
    """A sweep: progress and the comparison table."""

    id: str
    name: str | None
    points: int
    varied: list[str]
    columns: list[str]
    by_status: dict[str, int]
    done: bool
    table: list[SweepRow]
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Sweep:
        progress = doc.get("progress") or {}
        return cls(
            id=doc["id"], name=doc.get("name"), points=doc["points"],
            varied=list(doc.get("varied") or []), columns=list(doc.get("columns") or []),
            by_status=dict(progress.get("by_status") or {}), done=bool(progress.get("done")),
            table=[SweepRow.from_json(r) for r in doc.get("table") or []], raw=doc,
        )


# --- remedies ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RemedyFix:
    """One fix of an experiment's findings, tried as a twin: what it changed (``*_before`` is
    the original experiment's value, ``*_after`` the twin's; None until the twin succeeded)."""

    rank: int
    label: str
    edits: list[dict[str, Any]]
    targets: list[str]
    job_id: str | None
    status: str
    resolved: dict[str, bool | None]
    resolved_all: bool | None
    verified: bool | None  # every targeted finding gone and a lower validation loss
    findings_after: list[str] | None
    val_loss_before: float | None
    val_loss_after: float | None
    loss_share_before: float | None
    loss_share_after: float | None
    grad_ratio_before: float | None
    grad_ratio_after: float | None
    raw: dict[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> RemedyFix:
        def pair(name: str) -> tuple[Any, Any]:
            value = doc.get(name) or {}
            return value.get("before"), value.get("after")

        (loss_b, loss_a), (share_b, share_a), (grad_b, grad_a) = (
            pair("final_val_loss"), pair("loss_share"), pair("grad_ratio_init"))
        return cls(
            rank=int(doc["rank"]), label=doc["label"], edits=list(doc.get("edits") or []),
            targets=list(doc.get("targets") or []), job_id=doc.get("job_id"),
            status=doc["status"], resolved=dict(doc.get("resolved") or {}),
            resolved_all=doc.get("resolved_all"), verified=doc.get("verified"),
            findings_after=doc.get("findings_after"),
            val_loss_before=loss_b, val_loss_after=loss_a, loss_share_before=share_b,
            loss_share_after=share_a, grad_ratio_before=grad_b, grad_ratio_after=grad_a,
            raw=doc,
        )


@dataclass(frozen=True)
class Remedies:
    """The twins of an experiment's fixes: progress, the original's numbers (``before``) and
    the fixes, best first."""

    job_id: str
    sweep_id: str
    status: str  # running | done
    by_status: dict[str, int]
    before: dict[str, Any]
    fixes: list[RemedyFix]
    raw: dict[str, Any] = field(repr=False)

    @property
    def done(self) -> bool:
        return self.status == "done"

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Remedies:
        return cls(
            job_id=doc["job_id"], sweep_id=doc["sweep_id"], status=doc["status"],
            by_status=dict((doc.get("progress") or {}).get("by_status") or {}),
            before=dict(doc.get("before") or {}),
            fixes=[RemedyFix.from_json(f) for f in doc.get("fixes") or []], raw=doc,
        )
