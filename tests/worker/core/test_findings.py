"""Findings rules on constructed results: each fires on one side of its calibrated threshold and
not on the other, carries its numbers, and offers fixes that are valid specs."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from worker.core.design import design_facts
from worker.core.findings import RULES, apply_edits, findings, fixes_for, headline
from worker.core.findings.remedies import is_valid
from worker.core.findings.rules import RULES_BY_CODE, load_calibration
from worker.core.findings.transformer_rules import CODES as ATTENTION  # own test file
from worker.core.spec import ExperimentSpec

CAL = load_calibration()


def base_result(**sections: Any) -> dict[str, Any]:
    return {"summary": {"outcome": "completed", "planned_steps": 100, "final_val_loss": 0.1,
                        "baseline_val_loss": 0.69, "diverged_at_step": None}, **sections}


LR, MOMENTUM = 0.05, 0.9  # SPEC's optimizer: the effective step is lr * ratio / (1 - 0.9)


def gradient_flow(ratio_init: float, ratio_end: float = 1.0, updates=(1e-3, 1e-3),
                  grad_to_weight: float = 0.01):
    probe = {"gain_geomean": 1.0, "gain_db": 0.0,
             "grad_to_weight_ratio": [grad_to_weight, grad_to_weight / 2]}
    return {"weight_layers": ["0.linear", "1.linear"], "recurrent": None, "probes": [
        {**probe, "step": 0, "end_to_end_ratio": ratio_init, "update_to_weight": list(updates)},
        {**probe, "step": 100, "end_to_end_ratio": ratio_end, "update_to_weight": list(updates)},
    ]}


def slope(mean_sq_derivative: float, dead: float, layer: str = "1.activation"):
    item = {"layer": layer, "activation": "tanh", "saturated_share": 0.5,
            "mean_sq_derivative": mean_sq_derivative, "dead_unit_share": dead}
    return {"probes": [{"step": 0, "nonlinearities": [item]},
                       {"step": 100, "nonlinearities": [item]}]}


def recurrent(reach_init: float, reach_end: float, steps: int = 50, kind: str = "rnn",
              forget_gate: float | None = None):
    def probe(step, reach):
        return {"step": step, "layers": [{"layer": f"0.{kind}", "kind": kind, "steps": steps,
                                          "memory_horizon": round(reach * steps),
                                          "per_step_gain": 0.8,
                                          "forget_gate_mean": forget_gate}]}
    return {"probes": [], "weight_layers": [], "recurrent": [probe(0, reach_init),
                                                              probe(100, reach_end)]}


def local(err: float):
    return {"local_linearity": {"probes": [{"step": 0, "scales": [0.01, 0.1, 1.0],
                                            "median_error": [err / 10, err, err * 2]}]}}


def sides(code: str) -> tuple[float, float]:
    """A feature value on the firing side of the threshold, and one on the quiet side."""
    rule, t = RULES_BY_CODE[code], CAL[code].threshold
    step = max(abs(t) * 0.2, 0.05)
    bad, good = (t - step, t + step) if rule.direction == "below" else (t + step, t - step)
    return bad, good


def result_for(code: str, value: float) -> dict[str, Any]:
    """A result whose feature for ``code`` equals ``value`` and whose other numbers are calm."""
    calm_gf = gradient_flow(1.0)
    if code in ("vanishing_gradients_at_init", "exploding_gradients_at_init"):
        return base_result(gradient_flow=gradient_flow(10**value))
    if code == "saturated_units":
        return base_result(gradient_flow=calm_gf, linearity=slope(10**value, 0.0))
    if code == "dead_units":
        return base_result(gradient_flow=calm_gf, linearity=slope(0.5, value))
    if code == "lstm_forget_gate_closed":
        return base_result(gradient_flow=recurrent(1.0, 1.0, kind="lstm", forget_gate=value))
    if code in ("step_too_large_at_init", "step_too_small_at_init"):
        ratio = 10**value * (1 - MOMENTUM) / LR  # the largest layer's |grad W| / |W|
        return base_result(gradient_flow=gradient_flow(1.0, grad_to_weight=ratio))
    if code == "lr_above_stability_threshold_at_init":
        return base_result(curvature={"probes": [{"step": 0, "ratio": value, "lr": 0.1,
                                                  "top_eigenvalue": value * 38,
                                                  "stability_threshold": 38.0}]})
    if code == "vanishing_gradients_through_time":
        return base_result(gradient_flow=recurrent(value, 1.0))
    if code == "short_memory_after_training":
        return base_result(gradient_flow=recurrent(1.0, value))
    if code == "not_locally_linear":
        return base_result(gradient_flow=calm_gf, linearity=local(10**value))
    if code == "gradient_misaligned_with_solution":
        return base_result(trajectory={"alignment": {"mean": value, "steps": [0]}})
    if code == "interpolation_barrier":
        return base_result(linearity={"interpolation": {"loss": [1.0, 1.0 + value, 0.1],
                                                        "largest_bump": value,
                                                        "bump_alpha": 0.5}})
    if code == "lr_above_stability_threshold":
        return base_result(curvature={"probes": [{"step": 50, "ratio": value, "lr": 0.1,
                                                  "top_eigenvalue": value * 38,
                                                  "stability_threshold": 38.0}]})
    if code in ("frozen_layers", "thrashing_layers"):
        return base_result(gradient_flow=gradient_flow(1.0, updates=(10**value, 10**value)))
    if code == "diverged":
        r = base_result()
        r["summary"].update(outcome="diverged" if value > 0.5 else "completed",
                            diverged_at_step=7)
        return r
    raise AssertionError(code)


SPEC = {"spec_version": 1, "model": {"family": "mlp", "depth": 6, "width": 16,
                                     "activation": "tanh"},
        "init": {"scheme": "normal", "gain": 1.0}, "data": {"kind": "spirals"},
        "optimizer": {"lr": 0.05, "momentum": 0.9}, "training": {"steps": 100}}


@pytest.mark.parametrize("code", [rule.code for rule in RULES if rule.code not in ATTENTION])
def test_each_rule_fires_on_one_side_of_its_threshold_only(code: str) -> None:
    spec = ExperimentSpec.model_validate(SPEC)
    bad, good = sides(code)
    fired = [f for f in findings(spec, result_for(code, bad)) if f["code"] == code]
    quiet = [f for f in findings(spec, result_for(code, good)) if f["code"] == code]
    assert len(fired) == 1 and quiet == []
    finding = fired[0]
    expected = 1.0 if code == "diverged" else bad  # divergence is a yes/no feature
    assert finding["evidence"]["value"] == pytest.approx(expected, rel=1e-6, abs=1e-9)
    assert finding["evidence"]["threshold"] == CAL[code].threshold
    assert finding["severity"] == CAL[code].severity
    assert finding["at_init"] is RULES_BY_CODE[code].at_init


DESIGNS = [
    SPEC,
    {**SPEC, "model": {"family": "mlp", "depth": 12, "width": 32, "activation": "sigmoid"},
     "init": {"scheme": "default"}},
    {**SPEC, "model": {"family": "cnn", "depth": 4, "width": 8, "activation": "sin",
                       "frequency": 8}, "data": {"kind": "digits", "layout": "image"}},
    {**SPEC, "model": {"family": "rnn", "depth": 1, "width": 16}, "init": {"scheme": "default"},
     "data": {"kind": "adding", "length": 40}},
    {**SPEC, "model": {"family": "lstm", "depth": 1, "width": 16}, "data": {"kind": "adding"},
     "init": {"scheme": "default", "lstm_forget_bias": -2}},
    {**SPEC, "model": {"layers": [
        {"type": "linear", "out": 16}, {"type": "activation", "name": "sigmoid"},
        {"type": "residual", "body": [{"type": "linear", "out": 16},
                                      {"type": "activation", "name": "sawtooth",
                                       "frequency": 5}]},
        {"type": "linear", "out": 16}, {"type": "activation", "name": "relu"}]}},
]


@pytest.mark.parametrize("design", range(len(DESIGNS)))
def test_every_fix_is_a_valid_spec_that_changes_it(design: int) -> None:
    doc = DESIGNS[design]
    spec = ExperimentSpec.model_validate(doc)
    offered = 0
    for rule in RULES:
        for fix in fixes_for(rule.code, copy.deepcopy(doc), design_facts(spec)):
            edited = apply_edits(doc, list(fix.edits))
            assert is_valid(edited), (rule.code, fix)
            assert edited != doc, (rule.code, fix)
            offered += 1
    assert offered > 0


def test_fixes_name_the_right_change() -> None:
    sigmoid = DESIGNS[1]
    d = design_facts(ExperimentSpec.model_validate(sigmoid))
    labels = [f.label for f in fixes_for("vanishing_gradients_at_init", sigmoid, d)]
    assert labels[0] == "replace sigmoid with relu + He init (kaiming_normal)"
    assert "residual connections" in labels
    relu = apply_edits(sigmoid, list(fixes_for("vanishing_gradients_at_init", sigmoid, d)[0].edits))
    assert relu["model"]["activation"] == "relu" and relu["init"]["scheme"] == "kaiming_normal"
    layered = DESIGNS[5]
    d = design_facts(ExperimentSpec.model_validate(layered))
    (jagged,) = fixes_for("not_locally_linear", layered, d)
    assert [e["path"] for e in jagged.edits][:1] == ["model.layers.2.body.1.name"]
    rnn = DESIGNS[3]
    d = design_facts(ExperimentSpec.model_validate(rnn))
    memory = fixes_for("vanishing_gradients_through_time", rnn, d)
    assert apply_edits(rnn, list(memory[0].edits))["model"]["family"] == "lstm"
    lstm = DESIGNS[4]
    d = design_facts(ExperimentSpec.model_validate(lstm))
    assert [f.label for f in fixes_for("vanishing_gradients_through_time", lstm, d)] == [
        "forget-gate bias 1"]


def test_headline_reads_as_a_verdict() -> None:
    spec = ExperimentSpec.model_validate(DESIGNS[1])
    bad, _ = sides("vanishing_gradients_at_init")
    result = result_for("vanishing_gradients_at_init", bad)
    line = headline(findings(spec, result), result["summary"])
    assert line.startswith("Will not train as specified: vanishing gradients at init")
    assert "Try: replace sigmoid with relu" in line
    calm = result_for("vanishing_gradients_at_init", sides("vanishing_gradients_at_init")[1])
    assert headline(findings(spec, calm), calm["summary"]).startswith("No warnings")


def _stack(step: int, horizons: list[int | None], kind: str = "lstm", steps: int = 20):
    return {"step": step, "layers": [
        {"layer": f"{i}.{kind}", "kind": kind, "steps": steps, "memory_horizon": h,
         "per_step_gain": 0.9, "forget_gate_mean": 0.7 if kind == "lstm" else None}
        for i, h in enumerate(horizons)]}


def test_a_stacks_memory_is_its_longest_reach_not_its_shortest() -> None:
    """A 2-layer LSTM whose bottom layer's gradient spans the sequence (None) and whose top
    layer's own chain reaches 8 of 20 steps has the bottom layer's memory: the bottom layer's
    dL/dh_t already sums the paths through the top layer. Both layers short: the longer one."""
    spec = ExperimentSpec.model_validate(SPEC)
    code, threshold = "short_memory_after_training", CAL["short_memory_after_training"].threshold

    def fired(horizons: list[int | None]) -> list[dict[str, Any]]:
        flow = {"probes": [], "weight_layers": [],
                "recurrent": [_stack(0, [None, None]), _stack(100, horizons)]}
        return [f for f in findings(spec, base_result(gradient_flow=flow)) if f["code"] == code]

    assert fired([None, 8]) == []
    assert fired([8, None]) == []
    short = round(threshold * 20) - 2  # both layers below the threshold
    (finding,) = fired([short - 1, short])
    assert finding["evidence"]["layer"] == "1.lstm"
    assert finding["evidence"]["value"] == pytest.approx(short / 20)


@pytest.mark.parametrize("code", ["lr_above_stability_threshold",
                                  "lr_above_stability_threshold_at_init"])
def test_the_stability_limit_is_not_applied_to_batch_norm_networks(code: str) -> None:
    """Batch norm's scale invariance sizes SGD's step down as the weights grow, so a top
    eigenvalue above 2(1+beta)/eta says nothing there: the same curvature that fires on a plain
    MLP is silent once a batch-norm layer sits anywhere in the model (nested blocks too)."""
    spec = ExperimentSpec.model_validate(SPEC)
    in_blocks = ExperimentSpec.model_validate(  # a residual MLP with batch norm
        {**SPEC, "model": {"family": "mlp", "depth": 6, "width": 16, "activation": "relu",
                           "residual": True, "normalization": "batch"}})
    bad, _ = sides(code)
    result = result_for(code, bad)
    assert [f["code"] for f in findings(spec, result) if f["code"] == code] == [code]
    assert [f for f in findings(in_blocks, result) if f["code"] == code] == []
