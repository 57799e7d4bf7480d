"""The probe batch a run actually uses: the spec's default for its data, reported in the summary."""

from __future__ import annotations

from typing import Any

import pytest

from worker.compute.pipeline import run_experiment
from worker.core.spec import ExperimentSpec

pytestmark = pytest.mark.usefixtures("one_thread")


def token_spec(**diagnostics: Any) -> ExperimentSpec:
    return ExperimentSpec.model_validate({
        "spec_version": 1,
        "model": {"family": "transformer", "depth": 1, "width": 8, "heads": 2, "mlp_ratio": 1},
        "data": {"kind": "markov_language", "vocab": 4, "order": 1, "length": 64,
                 "n_train": 256, "n_val": 32},
        "training": {"steps": 2, "batch_size": 8, "device": "cpu"},
        "diagnostics": {"preset": "basic", **diagnostics},
    })


def test_token_run_probes_on_2048_positions_by_default() -> None:
    result = run_experiment(token_spec())
    assert result["summary"]["probe_batch_size"] == 2048 // 64 == 32


def test_explicit_probe_batch_is_used_and_reported() -> None:
    result = run_experiment(token_spec(probe_batch_size=12))
    assert result["summary"]["probe_batch_size"] == 12


def test_no_probes_no_probe_batch() -> None:
    result = run_experiment(token_spec(preset="off"))
    assert result["summary"]["probe_batch_size"] is None
