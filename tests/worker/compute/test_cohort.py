"""Sweep cohorts: every member trains as its own single run would, stopped members end alone.

The reference is each point's ordinary single run (``run_experiment``: its own data, seed,
learning rate, momentum and init gain). Per point the final losses agree to float tolerance
(1e-5 relative): the stacked products sum in another order, and members with their own learning
rate or momentum take per-element factors in the update (measured: bit-equal, or 1e-7 apart).
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from worker.compute import batched_loop
from worker.compute.cohort import cohort_batch_reason, run_cohort
from worker.compute.pipeline import RunHooks, run_experiment
from worker.core.cohorts import cohort_key
from worker.core.spec import ExperimentSpec


def point(seed: int = 0, lr: float = 0.05, momentum: float = 0.9, gain: float = 1.0,
          model: dict[str, Any] | None = None, **training: Any) -> ExperimentSpec:
    return ExperimentSpec.model_validate({
        "spec_version": 1, "name": f"p{seed}-{lr}-{momentum}-{gain}",
        "model": model or {"family": "mlp", "depth": 3, "width": 16, "activation": "tanh"},
        "data": {"kind": "spirals", "n_train": 128, "n_val": 64},
        "init": {"scheme": "normal", "gain": gain},
        "optimizer": {"lr": lr, "momentum": momentum},
        "training": {"steps": 40, "batch_size": 32, "device": "cpu", "seed": seed, **training},
        "diagnostics": {"preset": "basic"},
    })


def cohort_results(specs: list[ExperimentSpec], stop_at: dict[int, int] | None = None
                   ) -> tuple[dict[int, dict[str, Any]], list[int]]:
    """Each member's result, and the order in which they ended."""
    results: dict[int, dict[str, Any]] = {}
    order: list[int] = []
    seen: dict[int, int] = {}

    def hooks(k: int) -> RunHooks:
        def progress(p: dict[str, Any]) -> None:
            seen[k] = p["step"]

        def stop() -> bool:
            return stop_at is not None and k in stop_at and seen.get(k, 0) >= stop_at[k]
        return RunHooks(on_progress=progress, should_stop=stop)

    def done(k: int, result: dict[str, Any]) -> None:
        results[k] = result
        order.append(k)

    run_cohort(specs, [hooks(k) for k in range(len(specs))], done)
    return results, order


def close(a: float, b: float, rel: float) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-7)


def test_members_match_their_single_runs() -> None:
    specs = [point(seed=0), point(seed=1), point(lr=0.02), point(momentum=0.5),
             point(gain=1.5), point(seed=2, lr=0.1, momentum=0.0)]
    assert len({cohort_key(s) for s in specs}) == 1
    results, _ = cohort_results(specs)
    assert sorted(results) == list(range(len(specs)))
    for k, s in enumerate(specs):
        alone = run_experiment(s)["summary"]
        got = results[k]["summary"]
        assert got["steps"] == alone["steps"] == 40
        for key in ("final_train_loss", "final_val_loss"):
            assert close(got[key], alone[key], 1e-5), (k, key, got[key], alone[key])
        assert results[k]["cohort"] == {"size": len(specs), "index": k, "batched": True,
                                        "fallback": None}
    # the members really differ: a cohort that trained one model six times would pass above
    # only if the single runs were equal too
    finals = {round(results[k]["summary"]["final_train_loss"], 6) for k in results}
    assert len(finals) == len(specs)


def test_a_cancelled_member_ends_alone_at_its_step() -> None:
    specs = [point(seed=0), point(seed=1), point(seed=2)]
    results, order = cohort_results(specs, stop_at={1: 10})
    assert order[0] == 1  # reported before the others ended
    stopped = results[1]["summary"]
    assert stopped["outcome"] == "stopped" and 10 <= stopped["steps"] < 40
    for k in (0, 2):
        assert results[k]["summary"]["outcome"] == "completed"
        assert results[k]["summary"]["steps"] == 40
        alone = run_experiment(specs[k])["summary"]
        assert close(results[k]["summary"]["final_train_loss"], alone["final_train_loss"], 1e-5)


def lstm_point(seed: int) -> ExperimentSpec:
    return ExperimentSpec.model_validate({
        **point(seed=seed, model={"family": "lstm", "depth": 1, "width": 8}).model_dump(),
        "data": {"kind": "adding", "length": 6, "n_train": 64, "n_val": 32}})


def test_batch_reason_on_the_meta_device() -> None:
    assert cohort_batch_reason(point()) is None
    reason = cohort_batch_reason(lstm_point(0))
    assert reason is not None and "LSTM" in reason


def test_unbatchable_points_train_one_after_another() -> None:
    specs = [lstm_point(0), lstm_point(1)]
    results, order = cohort_results(specs)
    assert order == [0, 1]
    for k, s in enumerate(specs):
        assert results[k]["cohort"]["batched"] is False
        assert "LSTM" in results[k]["cohort"]["fallback"]
        alone = run_experiment(s)["summary"]
        assert results[k]["summary"]["final_train_loss"] == alone["final_train_loss"]


def test_init_seed_agreement_is_judged_per_member() -> None:
    specs = [ExperimentSpec.model_validate({
        **point(seed=s, model={"family": "mlp", "depth": 6, "width": 16,
                               "activation": "sigmoid"}).model_dump(),
        "diagnostics": {"preset": "basic", "init_seeds": 2}}) for s in (0, 1)]
    results, _ = cohort_results(specs)
    for k, s in enumerate(specs):
        alone = run_experiment(s)
        got = results[k]
        assert [f["code"] for f in got["findings"]] == [f["code"] for f in alone["findings"]]
        agreements = [f.get("seed_agreement") for f in got["findings"]]
        assert agreements == [f.get("seed_agreement") for f in alone["findings"]]
        assert any(a is not None for a in agreements)  # the init seeds were probed


def test_own_learning_rates_follow_their_schedules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Per-member rates come from a table sent to the device every LR_ROWS steps: across its
    refills (16 steps here), each member takes its own scheduled rate at every step."""
    monkeypatch.setattr(batched_loop, "LR_ROWS", 16)
    schedule = {"kind": "cosine", "warmup_steps": 5, "min_factor": 0.1}
    specs = [ExperimentSpec.model_validate({
        **point(lr=lr).model_dump(),
        "optimizer": {"lr": lr, "momentum": 0.9, "schedule": schedule}}) for lr in (0.02, 0.08)]
    results, _ = cohort_results(specs)
    for k, s in enumerate(specs):
        alone = run_experiment(s)["summary"]
        for key in ("final_train_loss", "final_val_loss"):
            assert close(results[k]["summary"][key], alone[key], 1e-5), (k, key)
