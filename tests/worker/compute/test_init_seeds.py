"""``diagnostics.init_seeds``: the step-0 probes repeated on fresh initializations, and what each
init-time finding says about them; the trained run itself is unchanged by them."""

from __future__ import annotations

from typing import Any

import pytest

from worker.compute.pipeline import run_experiment
from worker.core.spec import ExperimentSpec


def spec(activation: str, depth: int, *, steps: int = 0, init_seeds: int | None = None,
         scheme: str = "default") -> ExperimentSpec:
    return ExperimentSpec.model_validate({
        "spec_version": 1,
        "model": {"family": "mlp", "depth": depth, "width": 16, "activation": activation},
        "init": {"scheme": scheme},
        "data": {"kind": "spirals", "n_train": 256, "n_val": 64},
        "training": {"steps": steps, "batch_size": 32, "seed": 3, "device": "cpu"},
        "diagnostics": {"preset": "basic", "probe_batch_size": 64, "init_seeds": init_seeds},
    })


def by_code(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["code"]: f for f in result["findings"]}


def test_a_deep_sigmoid_vanishes_on_every_initialization(one_thread):
    result = run_experiment(spec("sigmoid", 12, init_seeds=4))
    vanishing = by_code(result)["vanishing_gradients_at_init"]
    agreement = vanishing["seed_agreement"]
    assert agreement["basis"] == "init_seeds"
    assert agreement["seeds"] == [3, 4, 5, 6]  # training.seed and the ones after it
    assert agreement["of"] == 4 and agreement["fired"] == 4
    assert agreement["fired_on"] == [3, 4, 5, 6]


def test_a_healthy_design_has_no_init_finding_on_any_seed(one_thread):
    result = run_experiment(spec("relu", 4, init_seeds=3, scheme="kaiming_normal"))
    assert not [f for f in result["findings"] if f["at_init"] and f["severity"] != "info"]


def test_findings_after_training_carry_no_init_agreement(one_thread):
    result = run_experiment(spec("sigmoid", 12, steps=20, init_seeds=3))
    for finding in result["findings"]:
        if not finding["at_init"]:
            assert finding.get("seed_agreement") is None, finding["code"]
        else:
            assert finding["seed_agreement"]["of"] == 3, finding["code"]


@pytest.mark.parametrize("init_seeds", [None, 3])
def test_the_trained_run_is_the_same_with_or_without_init_seeds(init_seeds, one_thread):
    plain = run_experiment(spec("tanh", 3, steps=40))
    probed = run_experiment(spec("tanh", 3, steps=40, init_seeds=init_seeds))
    assert probed["curves"]["train_loss"] == plain["curves"]["train_loss"]
    assert probed["summary"]["final_val_loss"] == plain["summary"]["final_val_loss"]
