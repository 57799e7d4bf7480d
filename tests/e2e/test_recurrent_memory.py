"""Vanilla RNN against LSTM (forget-gate bias 1) on the adding problem, T = 50, through the
whole service, same budget and optimizer (3000 steps x 64, SGD lr 0.15, momentum 0.9, global
norm clipping at 1; about 10 s per run on one CPU thread).

What holds over seeds 0-3 (run_experiment, the same code the worker runs):

- the LSTM solves the task (validation MSE 0.0008-0.0077) while the RNN stays at the
  mean-prediction baseline of 1/6 (0.153-0.175);
- at the end, the LSTM's gradient reaches the whole sequence (memory horizon null, 4/4);
- at initialization both horizons are short, the RNN's shorter (seeds 0-7: 7-9 against
  10-21 steps; per-step gradient gain 0.54-0.63 against 0.78-0.84).

The RNN's horizon at the end is *not* robustly shorter and is not asserted: training pushes
its recurrent weights toward the edge of stability, so its horizon grows to 28-43 steps or
even past T (null, 1 of 4 seeds) while it still fails the task. A long gradient reach is
necessary, not sufficient: the vanilla RNN has no gate to store the marked values.
"""

from __future__ import annotations

from typing import Any

import pytest

T = 50
BASELINE_MSE = 1 / 6  # predicting the mean sum (1) on the adding problem


def adding_spec(family: str) -> dict[str, Any]:
    return {
        "spec_version": 1,
        "name": f"{family} on adding, T = {T}",
        "model": {"family": family, "depth": 1, "width": 32},
        "init": {"scheme": "default", **({"lstm_forget_bias": 1.0} if family == "lstm" else {})},
        "data": {"kind": "adding", "length": T, "n_train": 2048, "n_val": 512},
        "optimizer": {"lr": 0.15, "momentum": 0.9, "clip_grad_norm": 1.0},
        "training": {"steps": 3000, "batch_size": 64, "seed": 0, "device": "cpu"},
        "diagnostics": {"preset": "basic", "probe_batch_size": 256, "every": 750},
    }


@pytest.fixture(scope="module")
def results(e2e_server, run_all) -> dict[str, dict[str, Any]]:
    with e2e_server.client() as client:
        jobs = run_all(client, {"rnn": adding_spec("rnn"), "lstm": adding_spec("lstm")},
                       timeout_s=240)
    for job in jobs.values():
        assert job["status"] == "succeeded", job.get("error")
    return {key: job["result"] for key, job in jobs.items()}


def through_time(result: dict[str, Any], probe: int) -> dict[str, Any]:
    layer: dict[str, Any] = result["gradient_flow"]["recurrent"][probe]["layers"][0]
    assert layer["steps"] == T
    return layer


def test_same_budget(results):
    rnn, lstm = results["rnn"]["summary"], results["lstm"]["summary"]
    assert rnn["steps"] == lstm["steps"] == 3000
    assert rnn["batch_size"] == lstm["batch_size"] == 64


def test_the_lstm_solves_the_adding_problem_and_the_rnn_does_not(results):
    rnn = results["rnn"]["summary"]["final_val_loss"]
    lstm = results["lstm"]["summary"]["final_val_loss"]
    assert lstm < 0.03, lstm  # measured 0.0008 (seeds 0-3: up to 0.0077)
    assert rnn > 0.6 * BASELINE_MSE, rnn  # measured 0.175: the mean predictor's loss
    assert lstm < rnn / 5


def test_the_trained_lstm_gradient_reaches_the_whole_sequence(results):
    final = through_time(results["lstm"], -1)
    assert final["memory_horizon"] is None, final["grad_rms"]
    assert final["forget_gate_mean"] is not None


def test_at_initialization_the_rnn_horizon_is_the_shorter(results):
    rnn, lstm = through_time(results["rnn"], 0), through_time(results["lstm"], 0)
    assert results["rnn"]["gradient_flow"]["recurrent"][0]["step"] == 0
    assert rnn["memory_horizon"] is not None and lstm["memory_horizon"] is not None
    assert rnn["memory_horizon"] < lstm["memory_horizon"] < T / 2  # measured 9 and 11
    assert rnn["per_step_gain"] < lstm["per_step_gain"] < 1
