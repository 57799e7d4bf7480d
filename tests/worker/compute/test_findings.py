"""Findings rules on synthetic diagnostics: what fires, at which severity, with which advice."""

from __future__ import annotations

from worker.compute.findings import optimizer_findings, recurrent_findings, slope_findings
from worker.core.design import design_facts


def rec_probe(step, verdict, horizon=5, kind="lstm"):
    layer = {
        "layer": "0.lstm",
        "kind": kind,
        "steps": 50,
        "verdict": verdict,
        "memory_horizon": horizon,
        "per_step_gain": 0.7,
    }
    return {"step": step, "layers": [layer]}


def test_recurrent_vanishing_only_at_init_is_info_and_respects_the_forget_bias(spec_factory):
    spec = spec_factory(
        model={"family": "lstm", "depth": 1, "width": 8, "activation": "relu"},
        init={"lstm_forget_bias": 1.0},
        data={"kind": "adding", "length": 50},
    )
    found = recurrent_findings(
        design_facts(spec), [rec_probe(0, "vanishing"), rec_probe(100, "healthy", None)]
    )
    assert [f["severity"] for f in found] == ["info"]
    assert "forget-gate bias" not in found[0]["suggestion"]  # it is already 1


def test_recurrent_vanishing_at_the_end_is_a_warning_suggesting_gates(spec_factory):
    spec = spec_factory(
        model={"family": "rnn", "depth": 1, "width": 8, "activation": "relu"},
        data={"kind": "adding", "length": 50},
    )
    found = recurrent_findings(
        design_facts(spec),
        [rec_probe(0, "vanishing", kind="rnn"), rec_probe(100, "vanishing", 7, "rnn")],
    )
    assert found[0]["severity"] == "warning"
    assert found[0]["evidence"]["memory_horizon"] == 7
    assert "lstm" in found[0]["suggestion"] and "orthogonal" in found[0]["suggestion"]


def nonlinearity(layer, dead):
    return {
        "layer": layer,
        "activation": "relu",
        "slope_coverage": 0.4,
        "saturated_share": None,
        "dead_unit_share": dead,
        "mean_sq_derivative": 0.4,
    }


def test_dead_units_are_judged_at_the_last_probe_and_milder_inside_residual_branches():
    early = {"step": 0, "nonlinearities": [nonlinearity("1.activation", 0.9)]}
    late_ok = {"step": 9, "nonlinearities": [nonlinearity("1.activation", 0.1)]}
    assert slope_findings([early, late_ok]) == []
    late_branch = {"step": 9, "nonlinearities": [nonlinearity("3.residual.body.2.activation", 0.8)]}
    assert [f["severity"] for f in slope_findings([early, late_branch])] == ["info"]
    late_main = {"step": 9, "nonlinearities": [nonlinearity("1.activation", 0.8)]}
    (finding,) = slope_findings([early, late_main])
    assert finding["severity"] == "warning" and finding["evidence"]["layers"] == {
        "1.activation": 0.8
    }


def test_sharpness_above_the_stability_limit_and_thrashing_layers(spec_factory):
    spec = spec_factory()
    result = {
        "curvature": {
            "probes": [
                {
                    "step": 0,
                    "top_eigenvalue": 10.0,
                    "stability_threshold": 38.0,
                    "ratio": 0.26,
                    "lr": 0.05,
                },
                {
                    "step": 5,
                    "top_eigenvalue": 50.0,
                    "stability_threshold": 38.0,
                    "ratio": 1.3,
                    "lr": 0.05,
                },
            ]
        },
        "gradient_flow": {
            "weight_layers": ["0.linear", "head"],
            "probes": [{"update_to_weight": [0.5, 1e-3]}, {"update_to_weight": [0.3, 2e-3]}],
        },
    }
    codes = {f["code"]: f for f in optimizer_findings(spec, result)}
    assert codes["lr_above_stability_threshold"]["evidence"]["step"] == 5
    assert codes["thrashing_layers"]["evidence"]["median_update_to_weight"] == {"0.linear": 0.5}
    assert "frozen_layers" not in codes
