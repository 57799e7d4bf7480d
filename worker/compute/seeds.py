"""``training.seeds``: K initializations of one design in one job, trained as one batched model.

Member k is the run of the spec with ``training.seed = seeds[k]`` on the data of the spec's own
seed: its weights are drawn from ``torch.manual_seed(seeds[k])`` as a single run's are, its
batch order and probe batch come from that seed. The batched loop (``batched_loop.py``) steps all
members at once; at logging, probe and evaluation points it reads or copies out each member:
probes run on the member's ordinary ``Net`` (its weights copied out at the probe step), so every
diagnostic works unchanged, and each member's result is built as a single run's. A member that
diverges stops being probed and evaluated (as a single run would stop); the others go on.
Cancellation and the time limit stop every member at the same step, with partial results.

Designs with a layer that has no batched form train the members one after another (each with
the global random state it had right after its initialization, so dropout masks match a single
run); the result says which layer and why (``seeds.fallback``).
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from worker.compute.batched import BatchedNet
from worker.compute.batched_loop import train_batched
from worker.compute.data import Dataset
from worker.compute.results import member_result
from worker.compute.seed_members import SeedMember, build_member
from worker.compute.stacked_layers import Unbatchable
from worker.compute.training import Outcome, TrainHooks, TrainOutcome, train
from worker.core.findings import headline
from worker.core.seed_agreement import merged_findings
from worker.core.spec import Analysis, ExperimentSpec

SPREAD_KEYS = ("final_train_loss", "final_val_loss", "final_val_accuracy")


def build_members(spec: ExperimentSpec, data: Dataset) -> list[SeedMember]:
    """One model per seed, initialized exactly as a single run with that seed would be."""
    return [build_member(spec.model_copy(update={"training": spec.training.model_copy(
        update={"seed": seed, "seeds": None})}), data) for seed in spec.training.member_seeds()]


def run_seeds(
    spec: ExperimentSpec, analysis: Analysis, data: Dataset, hooks: TrainHooks, started: float
) -> dict[str, Any]:
    """Train every seed (batched where the layers allow) and merge their results: the first
    seed's sections, every seed's outcome and the spread, findings with their agreement."""
    members = build_members(spec, data)
    shape = analysis.data.input_shape
    try:
        net: BatchedNet | None = BatchedNet([m.model for m in members], shape)
        fallback = None
    except Unbatchable as exc:
        net, fallback = None, f"{exc}: the seeds trained one after another"
    began = time.perf_counter()
    runs: list[TrainOutcome | None] = (
        list(train_batched(spec, members, net, hooks)) if net is not None
            else train_sequential(members, data, hooks))
    train_time = time.perf_counter() - began
    results = [
        None if run is None else member_result(
            m.spec, analysis, m.model, m.probes, run, data, time.perf_counter() - started)
        for m, run in zip(members, runs, strict=True)
    ]
    primary = results[0]
    assert primary is not None  # the first seed always runs
    merged = dict(primary)
    trained = [(m.seed, r["findings"]) for m, r in zip(members, results, strict=True) if r]
    merged["findings"] = merged_findings(trained, "training_seeds")
    merged["seeds"] = seed_runs(members, results, net is not None, fallback, train_time)
    merged["summary"] = {**primary["summary"], "outcome": job_outcome(runs)}
    merged["headline"] = headline(merged["findings"], merged["summary"])
    return merged


def job_outcome(runs: list[TrainOutcome | None]) -> Outcome:
    """The job's outcome: stopped or timed out if any member was, else the first seed's."""
    outcomes = [r.outcome for r in runs if r is not None]
    for stop in ("stopped", "timed_out"):
        if stop in outcomes:
            return stop
    return outcomes[0]


def seed_runs(members: list[SeedMember], results: list[dict[str, Any] | None], batched: bool,
              fallback: str | None, train_time_s: float) -> dict[str, Any]:
    runs = [seed_run(m.seed, r) for m, r in zip(members, results, strict=True)]
    spread = {}
    for key in SPREAD_KEYS:
        values = [r[key] for r in runs if r[key] is not None]
        spread[key] = {
            "median": statistics.median(values) if values else None,
            "min": min(values) if values else None,
            "max": max(values) if values else None,
            "n": len(values),
        }
    return {"seeds": [m.seed for m in members], "primary": members[0].seed, "batched": batched,
            "fallback": fallback, "train_time_s": train_time_s, "runs": runs, "spread": spread}


def seed_run(seed: int, result: dict[str, Any] | None) -> dict[str, Any]:
    if result is None:
        return {"seed": seed, "trained": False, "outcome": None, "steps": 0,
                "diverged_at_step": None, "final_train_loss": None, "final_val_loss": None,
                "final_train_accuracy": None, "final_val_accuracy": None,
                "grad_ratio_init": None, "findings": [], "diagnostics_time_s": 0.0}
    s = result["summary"]
    flow = (result.get("gradient_flow") or {}).get("probes") or []
    ratio = flow[0]["end_to_end_ratio"] if flow and flow[0]["step"] == 0 else None
    return {"seed": seed, "trained": True, "outcome": s["outcome"], "steps": s["steps"],
            "diverged_at_step": s["diverged_at_step"], "final_train_loss": s["final_train_loss"],
            "final_val_loss": s["final_val_loss"],
            "final_train_accuracy": s["final_train_accuracy"],
            "final_val_accuracy": s["final_val_accuracy"], "grad_ratio_init": ratio,
            "findings": [f["code"] for f in result["findings"]],
            "diagnostics_time_s": s["diagnostics_time_s"]}


def train_sequential(
    members: list[SeedMember], data: Dataset, hooks: TrainHooks
) -> list[TrainOutcome | None]:
    """The fallback: each member's ordinary run in turn; after a stop, the rest do not run."""
    runs: list[TrainOutcome | None] = []
    for i, m in enumerate(members):
        if runs and runs[-1] is not None and runs[-1].outcome in ("stopped", "timed_out"):
            runs.append(None)
            continue
        if runs and runs[-1] is None:
            runs.append(None)
            continue
        m.rng.restore()  # as right after its initialization: dropout masks as a single run's
        member_hooks = TrainHooks(_progress_of(hooks, i, len(members)), hooks.should_stop,
                                  hooks.deadline)
        runs.append(train(m.spec, m.model, data, m.probes, member_hooks))
    return runs


def _progress_of(hooks: TrainHooks, index: int, count: int) -> Any:
    """Progress of member ``index`` as progress through all members' steps."""
    def report(p: dict[str, Any]) -> None:
        total = p["total_steps"]
        hooks.on_progress({**p, "step": index * total + p["step"], "total_steps": count * total,
                           "seed_index": index})
    return report
