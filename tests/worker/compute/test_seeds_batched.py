"""``training.seeds``: the batched model trains each seed exactly as its own single-seed run.

The reference is independent of the batching: each member trained alone through the ordinary
single-model path (``train``: its own model, initialization and batch order from its seed, on
the job's data, drawn once from ``training.seed``). Per seed the final losses must agree to float
tolerance (a stacked ``baddbmm`` sums in another order than ``addmm``, nothing more); a recurrent
layer is not batched and the result says why; a time limit ends a batched job with every seed's
partial outcome.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from worker.compute.data import make_dataset
from worker.compute.evaluation import loss_function
from worker.compute.model import build_model
from worker.compute.pipeline import run_experiment
from worker.compute.results import build_probes, member_result
from worker.compute.training import train
from worker.core.spec import ExperimentSpec, analyze

SEEDS = [0, 1, 2]


def spec(model: dict[str, Any], data: dict[str, Any], **training: Any) -> dict[str, Any]:
    return {
        "spec_version": 1,
        "model": model,
        "data": data,
        "optimizer": {"lr": 0.05, "momentum": 0.9},
        "training": {"steps": 40, "batch_size": 32, "device": "cpu", **training},
        "diagnostics": {"preset": "basic"},
    }


MLP = ({"family": "mlp", "depth": 3, "width": 16, "activation": "tanh"},
       {"kind": "spirals", "n_train": 128, "n_val": 64})
LSTM = ({"family": "lstm", "depth": 1, "width": 8},
        {"kind": "adding", "length": 6, "n_train": 64, "n_val": 32})
TOKENS = {"kind": "markov_language", "vocab": 8, "order": 1, "length": 6, "n_train": 128,
          "n_val": 64}
#: Transformer variants that cover every batched transformer module: learned, sinusoidal and no
#: positions; layer and RMS norms, pre and post; rezero's learnable scales, DeepNorm's gains;
#: plain and gated MLPs; query-key norms; a pool over steps for a per-sequence target.
TRANSFORMERS = [
    ({"norm_position": "pre", "residual_scale": "rezero"}, TOKENS),
    ({"norm_position": "post", "residual_scale": "deepnorm", "positional": "sinusoidal"}, TOKENS),
    ({"mlp": "gated", "norm": "rms_norm", "qk_norm": True, "positional": "none"}, TOKENS),
    ({"causal": False}, {"kind": "adding", "length": 6, "n_train": 64, "n_val": 32}),
]


def run(doc: dict[str, Any]) -> dict[str, Any]:
    return run_experiment(ExperimentSpec.model_validate(doc))


def alone(doc: dict[str, Any], seed: int) -> dict[str, Any]:
    """The summary of member ``seed`` trained by itself on the job's data."""
    spec = ExperimentSpec.model_validate(doc)
    data = make_dataset(spec.data, spec.training.seed, torch.device("cpu"))
    one = spec.model_copy(
        update={"training": spec.training.model_copy(update={"seed": seed, "seeds": None})})
    torch.manual_seed(seed)
    model = build_model(one)
    probes = build_probes(one, model, data, loss_function(data.shape, one.training.loss))
    run = train(one, model, data, probes)
    summary: dict[str, Any] = member_result(one, analyze(one), model, probes, run, data,
                                            0.0)["summary"]
    return summary


def close(a: float | None, b: float | None, rel: float = 1e-4) -> bool:
    assert a is not None and b is not None
    return math.isclose(a, b, rel_tol=rel, abs_tol=1e-7)


def test_batched_seeds_train_as_their_own_single_seed_runs(one_thread: None) -> None:
    together = run(spec(*MLP, seeds=SEEDS))["seeds"]
    assert together["batched"] is True and together["fallback"] is None
    assert [r["seed"] for r in together["runs"]] == SEEDS
    for r in together["runs"]:
        ref = alone(spec(*MLP), r["seed"])
        assert r["steps"] == ref["steps"] == 40
        assert close(r["final_train_loss"], ref["final_train_loss"]), (r, ref)
        assert close(r["final_val_loss"], ref["final_val_loss"]), (r, ref)
    losses = sorted(r["final_val_loss"] for r in together["runs"])
    spread = together["spread"]["final_val_loss"]
    assert (spread["min"], spread["median"], spread["max"]) == pytest.approx(
        (losses[0], losses[1], losses[2]))
    assert len(set(losses)) == len(SEEDS)  # three different initializations, really


def test_a_recurrent_layer_trains_the_seeds_one_after_another_and_says_why(
        one_thread: None) -> None:
    together = run(spec(*LSTM, seeds=[0, 1]))["seeds"]
    assert together["batched"] is False
    assert "lstm" in (together["fallback"] or "").lower()
    for r in together["runs"]:
        assert r["final_train_loss"] == alone(spec(*LSTM), r["seed"])["final_train_loss"]


def test_a_time_limit_ends_a_batched_job_with_every_seeds_partial_outcome(
        one_thread: None) -> None:
    result = run(spec(*MLP, seeds=SEEDS, steps=2_000_000, time_limit_s=1.0))
    assert result["summary"]["outcome"] == "timed_out"
    runs = result["seeds"]["runs"]
    assert [r["seed"] for r in runs] == SEEDS
    assert all(0 < r["steps"] < 2_000_000 for r in runs)
    assert all(r["final_train_loss"] is not None for r in runs)


@pytest.mark.parametrize(("options", "data"), TRANSFORMERS)
def test_batched_transformer_seeds_train_as_their_own_single_seed_runs(
        one_thread: None, options: dict[str, Any], data: dict[str, Any]) -> None:
    model = {"family": "transformer", "depth": 2, "width": 8, "heads": 2, "mlp_ratio": 2,
             **options}
    doc = spec(model, data, steps=20, batch_size=16)
    doc["optimizer"]["lr"] = 0.3 if data is TOKENS else 0.02
    together = run({**doc, "training": {**doc["training"], "seeds": [0, 1]}})["seeds"]
    assert together["batched"] is True and together["fallback"] is None
    for r in together["runs"]:
        ref = alone(doc, r["seed"])
        assert r["outcome"] == ref["outcome"] == "completed"
        assert close(r["final_train_loss"], ref["final_train_loss"]), (r, ref)
        assert close(r["final_val_loss"], ref["final_val_loss"]), (r, ref)


def test_transformer_dropout_trains_the_seeds_one_after_another_and_says_why(
        one_thread: None) -> None:
    model = {"family": "transformer", "depth": 1, "width": 8, "heads": 2, "dropout": 0.1}
    together = run(spec(model, TOKENS, steps=5, seeds=[0, 1]))["seeds"]
    assert together["batched"] is False
    assert "dropout" in (together["fallback"] or "")
