"""Remedies behind ``/v1/experiments/{id}/remedies``: a finished job's fixes, tried as twins.

A finding's fixes are spec edits (``worker/core/findings/remedies.py``), validated against the
job's spec when the worker wrote them. Each distinct fix of the job's warning and critical
findings runs as a twin: the job's own spec with only that fix's edits applied, so the same
data, seed, budget and diagnostics. The twins are launched through the sweep machinery (one
named variant per fix), so they are a sweep with a table and a report of their own, and the
job is linked to that sweep (``worker/jobs/remedy_links.py``): a second POST answers with the
twins already launched instead of launching them again, unless it asks for a re-run.

The outcome compares each twin with the job: whether each targeted finding went away, and the
final validation loss, its share of the constant predictor's, and the step-0 end-to-end
gradient ratio, before → after. A fix is *verified* when every finding it targets went away
and the twin ends with a lower validation loss than the job: silencing a finding is not enough
(a batch-norm twin of a deep sigmoid MLP lost both its findings and trained worse). Verified
fixes rank first, then the other finished twins, each by lower final loss.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from service.auth import Caller
from service.schemas.remedies import (
    BeforeAfter,
    RemediesBefore,
    RemediesPublic,
    RemedyEdit,
    RemedyOutcome,
    remedies_links,
)
from service.schemas.sweeps import SweepCreate
from service.settings import ServiceSettings
from service.usecases.sweeps import PointState, create_sweep, point_states, progress_of, rows_of
from worker.core.errors import (
    InvalidRequest,
    JobStateConflict,
    RemediesNotFound,
    ResultNotReady,
    SweepNotFound,
)
from worker.core.sweeps import COLUMN, MAX_NAME_CHARS, VARIANT
from worker.jobs.dispatch import JobDispatcher
from worker.jobs.records import JobRecord, SweepRecord
from worker.jobs.remedy_links import RemedyLinks
from worker.jobs.store import JobStore
from worker.jobs.sweep_store import SweepStore

#: Severities whose fixes are tried (an ``info`` is worth knowing, not worth a run).
SERIOUS: Final = frozenset({"critical", "warning"})
#: How long one launch may hold the job's lock (creating the sweep takes milliseconds).
LAUNCH_LOCK_S: Final = 30.0
_LAUNCH_POLL_S: Final = 0.05


@dataclass(frozen=True)
class Remedy:
    """One distinct fix of a job's findings: its variant name in the sweep, and its targets."""

    name: str  # the label, made unique among the job's fixes
    label: str
    edits: tuple[dict[str, Any], ...]
    targets: tuple[str, ...]  # the finding codes it addresses, most severe first

    def overrides(self) -> dict[str, Any]:
        """The fix as a sweep variant: dotted path -> value."""
        return {str(edit["path"]): edit["value"] for edit in self.edits}


def remedies_of(result: Mapping[str, Any] | None) -> list[Remedy]:
    """The distinct fixes (same label and edits: one fix) of the result's warning and
    critical findings, in the order the findings come (most severe first)."""
    found: dict[str, tuple[str, list[dict[str, Any]], list[str]]] = {}
    for finding in (result or {}).get("findings") or []:
        if finding.get("severity") not in SERIOUS:
            continue
        for fix in finding.get("fixes") or []:
            edits = [{"path": str(e["path"]), "value": e.get("value")}
                     for e in fix.get("edits") or []]
            if not edits:
                continue
            label = str(fix.get("label") or "fix")
            key = json.dumps([label, edits], sort_keys=True)
            codes = found.setdefault(key, (label, edits, []))[2]
            if finding.get("code") not in codes:
                codes.append(str(finding.get("code")))
    remedies: list[Remedy] = []
    for label, edits, codes in found.values():
        name, n = label, 1
        while any(r.name == name for r in remedies):  # one label, other edits: keep both
            n += 1
            name = f"{label} ({n})"
        remedies.append(Remedy(name=name, label=label, edits=tuple(edits), targets=tuple(codes)))
    return remedies


def eligible_remedies(job: JobRecord) -> list[Remedy]:
    """The fixes to try for ``job``: ``ResultNotReady`` (409) before it is final; a 422 when
    it did not succeed (nothing to compare with) or has no fix to try."""
    if not job.is_final:
        raise ResultNotReady(job.id, job.status)
    if job.status != "succeeded":
        raise InvalidRequest(
            f"experiment {job.id} ended {job.status}: remedies are compared with a run that "
            "succeeded", field="job_id", location="path")
    remedies = remedies_of(job.result)
    if not remedies:
        raise InvalidRequest(
            f"experiment {job.id} has no warning or critical finding with a fix to try",
            field="job_id", location="path")
    return remedies


@dataclass(frozen=True)
class RemediesLaunch:
    """The outcome, and whether this call launched the twins (False: they already ran)."""

    outcome: RemediesPublic
    created: bool


def start_remedies(
    job_id: str, *, rerun: bool = False, settings: ServiceSettings, store: JobStore,
    sweeps: SweepStore, links: RemedyLinks, dispatcher: JobDispatcher, caller: Caller,
) -> RemediesLaunch:
    """Launch the job's fixes as a sweep of twins, once per job (``rerun``: again)."""
    job = caller.check_owns(store.get(job_id))
    remedies = eligible_remedies(job)
    seen = links.sweep_of(job.id)
    if not rerun and (record := _sweep(sweeps, seen)) is not None:
        return RemediesLaunch(outcome_view(store, job, remedies, record), created=False)
    token = None
    for _ in range(int(2 * LAUNCH_LOCK_S / _LAUNCH_POLL_S)):  # the lock expires within this
        token = links.begin_launch(job.id, LAUNCH_LOCK_S)
        if token is not None:
            break
        time.sleep(_LAUNCH_POLL_S)  # another request is launching: answer with its sweep
        current = links.sweep_of(job.id)
        if current != seen and (record := _sweep(sweeps, current)) is not None:
            return RemediesLaunch(outcome_view(store, job, remedies, record), created=False)
    if token is None:
        raise JobStateConflict(job.id, job.status, "remedies", "another launch holds it")
    sweep_id = None
    try:
        current = links.sweep_of(job.id)
        if current != seen and (record := _sweep(sweeps, current)) is not None:
            return RemediesLaunch(outcome_view(store, job, remedies, record), created=False)
        sweep_id = create_sweep(_sweep_body(job, remedies), settings=settings, store=store,
                                sweeps=sweeps, dispatcher=dispatcher, caller=caller).id
    finally:
        links.end_launch(job.id, token, sweep_id)
    return RemediesLaunch(outcome_view(store, job, remedies, sweeps.get(sweep_id)), created=True)


def _sweep_body(job: JobRecord, remedies: Iterable[Remedy]) -> SweepCreate:
    """The twins as a sweep: the job's stored spec as the base, one variant per fix."""
    name = f"remedies of {job.name or job.id}"
    return SweepCreate.model_validate({
        "name": name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 1] + "…",
        "base": json.loads(job.spec),
        "variants": {r.name: r.overrides() for r in remedies},
    })


def _sweep(sweeps: SweepStore, sweep_id: str | None) -> SweepRecord | None:
    if sweep_id is None:
        return None
    try:
        return sweeps.get(sweep_id)
    except SweepNotFound:  # expired: as if never launched
        return None


def linked_remedies(
    store: JobStore, sweeps: SweepStore, links: RemedyLinks, job: JobRecord
) -> RemediesPublic | None:
    """The outcome of the job's remedies, or None when none were launched (or expired)."""
    record = _sweep(sweeps, links.sweep_of(job.id))
    if record is None:
        return None
    return outcome_view(store, job, remedies_of(job.result), record)


def get_remedies(
    job_id: str, *, store: JobStore, sweeps: SweepStore, links: RemedyLinks, caller: Caller
) -> RemediesPublic:
    """The outcome so far; ``RemediesNotFound`` when none were launched for the job."""
    job = caller.check_owns(store.get(job_id))
    outcome = linked_remedies(store, sweeps, links, job)
    if outcome is None:
        raise RemediesNotFound(job.id)
    return outcome


# --- the outcome -----------------------------------------------------------------------------

def _numbers(result: Mapping[str, Any] | None) -> tuple[float | None, float | None, float | None]:
    """(final val loss, its share of the constant predictor's, step-0 gradient ratio)."""
    if not result:
        return None, None, None
    loss = _finite(COLUMN["final_val_loss"].read(result))  # type: ignore[misc]
    base = _finite((result.get("summary") or {}).get("baseline_val_loss"))
    share = loss / base if loss is not None and base else None
    return loss, share, _finite(COLUMN["grad_ratio_init"].read(result))  # type: ignore[misc]


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def serious_codes(result: Mapping[str, Any] | None) -> list[str]:
    return [str(f.get("code")) for f in (result or {}).get("findings") or []
            if f.get("severity") in SERIOUS]


def _fix_outcome(remedy: Remedy, state: PointState | None,
                 before: tuple[float | None, ...]) -> RemedyOutcome:
    twin = state.job if state is not None else None
    done = twin is not None and twin.status == "succeeded"
    after = _numbers(twin.result) if done and twin is not None else (None, None, None)
    codes = {str(f.get("code")) for f in (twin.result or {}).get("findings") or []} \
        if done and twin is not None else None
    resolved = {code: (code not in codes) if codes is not None else None
                for code in remedy.targets}
    return RemedyOutcome(
        rank=0, label=remedy.name, edits=[RemedyEdit.model_validate(e) for e in remedy.edits],
        targets=list(remedy.targets), job_id=twin.id if twin is not None else None,
        status=twin.status if twin is not None else "expired", resolved=resolved,
        resolved_all=all(v is True for v in resolved.values()) if done else None,
        verified=_verified(resolved, before[0], after[0]) if done else None,
        findings_after=serious_codes(twin.result) if done and twin is not None else None,
        final_val_loss=BeforeAfter(before=before[0], after=after[0]),
        loss_share=BeforeAfter(before=before[1], after=after[1]),
        grad_ratio_init=BeforeAfter(before=before[2], after=after[2]),
    )


def _verified(resolved: Mapping[str, bool | None], before: float | None,
              after: float | None) -> bool:
    """Every targeted finding gone and a lower final validation loss than the original's
    (a missing loss: diverged, infinitely high)."""
    lower = after is not None and math.isfinite(after) and (
        before is None or not math.isfinite(before) or after < before)
    return all(v is True for v in resolved.values()) and lower


def _rank_key(item: tuple[int, RemedyOutcome]) -> tuple[int, float, int]:
    index, fix = item
    tier = {True: 0, False: 1, None: 2}[fix.verified]
    loss = fix.final_val_loss.after
    return tier, loss if loss is not None else math.inf, index


def outcome_view(
    store: JobStore, job: JobRecord, remedies: list[Remedy], record: SweepRecord
) -> RemediesPublic:
    """Each fix's twin against the job, ranked (see ``RemedyOutcome.rank``)."""
    states = point_states(store, record)
    by_variant = {str(s.point.values.get(VARIANT)): s for s in states}
    before = _numbers(job.result)
    fixes = [_fix_outcome(r, by_variant.get(r.name), before) for r in remedies]
    ranked = [fix.model_copy(update={"rank": n})
              for n, (_, fix) in enumerate(sorted(enumerate(fixes), key=_rank_key), start=1)]
    progress = progress_of(rows_of(states))
    summary = (job.result or {}).get("summary") or {}
    return RemediesPublic(
        job_id=job.id, sweep_id=record.id, status="done" if progress.done else "running",
        progress=progress,
        before=RemediesBefore(
            final_val_loss=before[0], baseline_val_loss=_finite(summary.get("baseline_val_loss")),
            loss_share=before[1], grad_ratio_init=before[2], findings=serious_codes(job.result),
        ),
        fixes=ranked, links=remedies_links(job.id, record.id),
    )
