"""Schemas of ``/v1/experiments/{id}/remedies``: a finished job's fixes tried as twins, and
what each changed (one schema for the launch and the outcome, so a POST that finds the twins
already running answers exactly like the GET)."""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue

from service.schemas.sweeps import SweepProgress
from worker.jobs.records import JobStatus

_SID, _JID = "c997d1091fd74f158ac6cc46e080c1dc", "abca321a981b48fea0d65ecba0da28eb"
_RELU = "replace sigmoid with relu + He init (kaiming_normal)"


def _fix_example(rank: int, label: str, edits: list[dict[str, Any]], job_id: str,
                 loss: float, ratio: float) -> dict[str, Any]:
    return {
        "rank": rank, "label": label, "edits": edits,
        "targets": ["vanishing_gradients_at_init"], "job_id": job_id, "status": "succeeded",
        "resolved": {"vanishing_gradients_at_init": True}, "resolved_all": True,
        "verified": loss < 0.7024, "findings_after": [],
        "final_val_loss": {"before": 0.7024, "after": loss},
        "loss_share": {"before": 1.013, "after": round(loss / 0.6932, 4)},
        "grad_ratio_init": {"before": 9.39e-07, "after": ratio},
    }


#: A depth-8 sigmoid MLP at PyTorch's default init on spirals, 300 steps, and its three fixes.
REMEDIES_EXAMPLE: Final[dict[str, Any]] = {
    "job_id": _JID, "sweep_id": _SID, "status": "done",
    "progress": {"total": 3, "final": 3, "done": True,
                 "by_status": {"queued": 0, "running": 0, "succeeded": 3, "failed": 0,
                               "cancelled": 0, "timed_out": 0}},
    "before": {"final_val_loss": 0.7024, "baseline_val_loss": 0.6932, "loss_share": 1.013,
               "grad_ratio_init": 9.39e-07, "findings": ["vanishing_gradients_at_init"]},
    "fixes": [
        _fix_example(1, _RELU, [{"path": "model.activation", "value": "relu"},
                                {"path": "init.scheme", "value": "kaiming_normal"},
                                {"path": "init.gain", "value": None}],
                     "0f6c1e2d3b4a59687766554433221100", 0.1008, 1.16),
        _fix_example(2, "batch normalization",
                     [{"path": "model.normalization", "value": "batch"}],
                     "1f6c1e2d3b4a59687766554433221100", 0.5063, 23.99),
        _fix_example(3, "residual connections", [{"path": "model.residual", "value": True}],
                     "2f6c1e2d3b4a59687766554433221100", 0.5999, 0.981),
    ],
    "links": {"self": f"/v1/experiments/{_JID}/remedies", "experiment": f"/v1/experiments/{_JID}",
              "sweep": f"/v1/sweeps/{_SID}", "sweep_report": f"/v1/sweeps/{_SID}/report"},
}


class BeforeAfter(BaseModel):
    before: float | None = Field(description="The original experiment's value.")
    after: float | None = Field(description="The twin's value (null until it has succeeded).")


class RemedyEdit(BaseModel):
    path: str = Field(description="Dotted path into the spec, e.g. model.activation.")
    value: JsonValue = Field(description="The value the twin's spec has there.")


class RemedyOutcome(BaseModel):
    """One fix: the twin that tried it, and what changed against the original."""

    rank: int = Field(description="1 = best: verified fixes first (see verified), then the "
                      "other finished twins, each group by lower final validation loss; "
                      "unfinished twins last.")
    label: str = Field(description="The fix in words (its variant name in the sweep).")
    edits: list[RemedyEdit] = Field(description="The only changes from the original spec.")
    targets: list[str] = Field(description="The codes of the findings this fix addresses.")
    job_id: str | None = Field(description="The twin experiment (null: its record expired).")
    status: JobStatus | Literal["expired"] = Field(description="The twin's status.")
    resolved: dict[str, bool | None] = Field(
        description="Per targeted finding code: true when the twin no longer has it, false "
        "when it still does, null until the twin has succeeded."
    )
    resolved_all: bool | None = Field(
        description="Every targeted finding went away (null until the twin has succeeded)."
    )
    verified: bool | None = Field(
        description="The fix works: every targeted finding went away and the twin's final "
        "validation loss is lower than the original's (a diverged original counts as "
        "infinitely high). A fix can silence its findings and train worse: resolved_all "
        "true, verified false. Null until the twin has succeeded."
    )
    findings_after: list[str] | None = Field(
        description="The twin's warning and critical finding codes (null until it succeeded)."
    )
    final_val_loss: BeforeAfter = Field(description="Final validation loss.")
    loss_share: BeforeAfter = Field(
        description="Final validation loss as a share of the constant predictor's "
        "(summary.baseline_val_loss): 1 means it learned nothing beyond class frequencies."
    )
    grad_ratio_init: BeforeAfter = Field(
        description="End-to-end gradient ratio (first / last observed layer) at step 0."
    )


class RemediesBefore(BaseModel):
    """The original experiment's numbers, the left side of every before → after."""

    final_val_loss: float | None = Field(description="Its final validation loss.")
    baseline_val_loss: float | None = Field(
        description="The best constant predictor's validation loss (the trivial baseline)."
    )
    loss_share: float | None = Field(description="final_val_loss / baseline_val_loss.")
    grad_ratio_init: float | None = Field(description="End-to-end gradient ratio at step 0.")
    findings: list[str] = Field(description="Its warning and critical finding codes.")


class RemediesLinks(BaseModel):
    self: str = Field(description="This outcome (GET to poll it).")
    experiment: str = Field(description="The original experiment.")
    sweep: str = Field(description="The twins as a sweep (its comparison table).")
    sweep_report: str = Field(description="The sweep's HTML report.")


class RemediesPublic(BaseModel):
    """Each fix of a finished experiment's findings, run as a twin (the same spec, data, seed
    and budget with only the fix's edits), ranked by what it changed."""

    model_config = ConfigDict(json_schema_extra={"examples": [REMEDIES_EXAMPLE]})

    job_id: str = Field(description="The original experiment.")
    sweep_id: str = Field(description="The sweep that runs the twins, one variant per fix.")
    status: Literal["running", "done"] = Field(
        description="done once every twin has ended; until then the numbers are partial."
    )
    progress: SweepProgress = Field(description="The twins by status.")
    before: RemediesBefore = Field(description="The original experiment's numbers.")
    fixes: list[RemedyOutcome] = Field(description="One entry per fix, best first.")
    links: RemediesLinks = Field(description="Where to poll, and the twins' sweep.")


def remedies_links(job_id: str, sweep_id: str) -> RemediesLinks:
    return RemediesLinks(
        self=f"/v1/experiments/{job_id}/remedies", experiment=f"/v1/experiments/{job_id}",
        sweep=f"/v1/sweeps/{sweep_id}", sweep_report=f"/v1/sweeps/{sweep_id}/report",
    )
