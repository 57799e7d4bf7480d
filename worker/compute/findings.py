"""Plain-language findings: rules over the diagnostics, each with the numbers that fired it.

Suggestions come from the design choices that make models easier to optimize: activations with
significant slope over most of their domain (ReLU, GELU), initialization at the right gain,
skip connections for depth, normalization, and a learning rate the run can sustain.
"""

from __future__ import annotations

import math
from typing import Any, Literal

from worker.core.design import DesignFacts, design_facts
from worker.core.spec import ExperimentSpec

Severity = Literal["info", "warning", "critical"]
MAJORITY = 0.5  # share above which saturation or dead units is reported
RESIDUAL_BODY = ".residual.body."  # in the names of layers inside a residual branch
LOCAL_SCALE, LOCAL_ERROR = 0.1, 0.5  # first-order error at a 10% input step
ALIGNMENT = 0.1  # mean cosine between -gradient and the direction to the solution
MLI_BUMP = 0.05  # interpolation barrier, relative to the initial loss
FROZEN, THRASHING = 1e-6, 0.1  # median update-to-weight ratio bounds


def _finding(
    code: str, severity: Severity, message: str, evidence: dict[str, Any], suggestion: str
) -> dict[str, Any]:
    return {
        "code": code,
        "severity": severity,
        "message": message,
        "evidence": evidence,
        "suggestion": suggestion,
    }


def _vanishing_suggestion(d: DesignFacts) -> str:
    tips = []
    if d.saturating:
        names = ", ".join(sorted(d.saturating))
        tips.append(
            f"replace {names} with an activation that keeps its slope over most of its "
            "domain (relu, gelu, maxout)"
        )
    if d.init_scheme in ("default", "xavier_uniform", "xavier_normal") or (
        d.init_gain is not None and d.init_gain < 1
    ):
        tips.append("initialize at the activation's gain (kaiming_normal for relu)")
    if not d.residual and d.depth > 4:
        tips.append("add residual (skip) connections so gradients have an identity path")
    if not d.normalization:
        tips.append("add batch or layer normalization")
    if "rnn" in d.recurrent:
        tips.append("use an lstm or gru instead of a vanilla rnn")
    return "; ".join(tips) or "reduce depth or raise the init gain"


def _exploding_suggestion(d: DesignFacts) -> str:
    tips = ["lower the init gain (normal with gain 1, or kaiming for relu)"]
    if not d.normalization:
        tips.append("add batch or layer normalization")
    if d.recurrent:
        tips.append("clip the gradient norm (optimizer.clip_grad_norm)")
    return "; ".join(tips)


def gradient_flow_findings(d: DesignFacts, probes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Vanishing/exploding at initialization, and a verdict that changes by the end."""
    if not probes:
        return []
    found = []
    first, last = probes[0], probes[-1]
    evidence = {
        "step": first["step"],
        "end_to_end_ratio": first["end_to_end_ratio"],
        "gain_geomean": first["gain_geomean"],
        "gain_db": first["gain_db"],
        "depth": d.depth,
    }
    if first["end_to_end_verdict"] == "vanishing":
        found.append(
            _finding(
                "vanishing_gradients_at_init",
                "critical",
                f"At initialization the gradient reaching the first hidden layer is "
                f"{first['end_to_end_ratio']:.2e} times the one at the last hidden layer: "
                "early layers barely learn.",
                evidence,
                _vanishing_suggestion(d),
            )
        )
    elif first["end_to_end_verdict"] == "exploding":
        found.append(
            _finding(
                "exploding_gradients_at_init",
                "critical",
                f"At initialization the gradient grows {first['end_to_end_ratio']:.2e}-fold from "
                "the last hidden layer back to the first.",
                evidence,
                _exploding_suggestion(d),
            )
        )
    if (
        last is not first
        and last["end_to_end_verdict"] != "healthy"
        and last["end_to_end_verdict"] != first["end_to_end_verdict"]
    ):
        found.append(
            _finding(
                f"{last['end_to_end_verdict']}_gradients_after_training",
                "warning",
                f"By step {last['step']} gradient flow became {last['end_to_end_verdict']} "
                f"(end-to-end ratio {last['end_to_end_ratio']:.2e}).",
                {"step": last["step"], "end_to_end_ratio": last["end_to_end_ratio"]},
                _vanishing_suggestion(d)
                if last["end_to_end_verdict"] == "vanishing"
                else _exploding_suggestion(d),
            )
        )
    return found


def slope_findings(probes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Majority-saturated layers (first probe where it happens) and majority-dead layers at the
    last probe (units that die and recover during training are not a lasting problem)."""
    found = []
    rules = (
        (
            "saturated_share",
            "saturated_units",
            "saturated (|phi'| below 10% of its maximum)",
            "use a non-saturating activation (relu, gelu), lower the init gain, or normalize "
            "pre-activations",
            probes,
        ),
        (
            "dead_unit_share",
            "dead_units",
            "dead (inactive on every probe example)",
            "use leaky_relu or gelu, a smaller learning rate, or kaiming initialization",
            probes[-1:],
        ),
    )
    for key, code, what, tip, candidates in rules:
        for probe in candidates:
            bad = [
                (n["layer"], n[key])
                for n in probe["nonlinearities"]
                if n[key] is not None and n[key] > MAJORITY
            ]
            if bad:
                worst = max(bad, key=lambda b: b[1])
                # inside a residual branch the skip still carries the gradient: less severe
                branch_only = all(RESIDUAL_BODY in name for name, _ in bad)
                found.append(
                    _finding(
                        code,
                        "info" if branch_only else "warning",
                        f"At step {probe['step']}, {len(bad)} of {len(probe['nonlinearities'])} "
                        f"layers have most units {what}; worst {worst[0]} at {worst[1]:.0%}.",
                        {"step": probe["step"], "layers": dict(bad)},
                        tip,
                    )
                )
                break
    return found


def divergence_findings(spec: ExperimentSpec, summary: dict[str, Any]) -> list[dict[str, Any]]:
    if summary["outcome"] != "diverged":
        return []
    o = spec.optimizer
    return [
        _finding(
            "diverged",
            "critical",
            f"Training diverged: the loss became non-finite at step {summary['diverged_at_step']}.",
            {"diverged_at_step": summary["diverged_at_step"], "lr": o.lr, "momentum": o.momentum},
            "lower the learning rate (or the momentum), and normalize or re-initialize so "
            "gradients start at a sensible scale",
        )
    ]


def recurrent_findings(d: DesignFacts, probes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A recurrent layer whose gradient dies out well before the sequence's start.

    Still so at the last probe: a warning (training did not open a longer memory). Only at
    initialization: info, since gated units (LSTM/GRU) routinely learn to extend it.
    """
    if not probes:
        return []
    last = [
        (probes[-1], layer) for layer in probes[-1]["layers"] if layer["verdict"] == "vanishing"
    ]
    first = [(probes[0], layer) for layer in probes[0]["layers"] if layer["verdict"] == "vanishing"]
    hits = last or first
    severity: Severity = "warning" if last else "info"
    if not hits:
        return []
    probe, layer = hits[0]
    tips = []
    if layer["kind"] == "rnn":
        tips.append("use an lstm (forget-gate bias 1) or a gru instead of a vanilla rnn")
    elif layer["kind"] == "lstm" and (d.lstm_forget_bias is None or d.lstm_forget_bias < 1):
        tips.append("raise the LSTM forget-gate bias (init.lstm_forget_bias = 1)")
    if d.init_scheme != "orthogonal":
        tips.append("initialize recurrent weights orthogonally")
    if not tips:
        tips.append("clip the gradient norm and train longer")
    return [
        _finding(
            "vanishing_gradients_through_time",
            severity,
            f"At step {probe['step']}, the gradient in {layer['layer']} falls below 1% of its "
            f"last-step value {layer['memory_horizon']} of {layer['steps']} steps back: "
            "earlier inputs barely influence learning.",
            {
                "step": probe["step"],
                "memory_horizon": layer["memory_horizon"],
                "sequence_length": layer["steps"],
                "per_step_gain": layer["per_step_gain"],
            },
            "; ".join(tips),
        )
    ]


def _closest(values: list[float], target: float) -> int:
    return min(range(len(values)), key=lambda i: abs(math.log(values[i] / target)))


def linearity_findings(d: DesignFacts, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Far from locally linear, gradients that do not point to the solution, MLI barriers."""
    found = []
    lin = result.get("linearity", {})
    local = lin.get("local_linearity")
    tip = (
        "use activations that are piecewise linear or smooth and monotone (relu, gelu, maxout)"
        if d.jagged
        else "add normalization or residual connections, or lower the init gain"
    )
    if local and local.get("probes"):
        first = local["probes"][0]
        i = _closest(first["scales"], LOCAL_SCALE)
        err = first["median_error"][i]
        if err is not None and err > LOCAL_ERROR:
            found.append(
                _finding(
                    "not_locally_linear",
                    "warning",
                    f"At initialization a {first['scales'][i]:g}-relative input step is "
                    f"predicted by the first-order model with a median error of {err:.0%}: the "
                    "function bends sharply, so local gradients say little beyond tiny steps.",
                    {"step": first["step"], "scale": first["scales"][i], "median_error": err},
                    tip,
                )
            )
    align = (result.get("trajectory") or {}).get("alignment")
    if align and align.get("mean") is not None and align["mean"] < ALIGNMENT:
        found.append(
            _finding(
                "gradient_misaligned_with_solution",
                "warning",
                f"The gradient's mean cosine with the direction to the final weights is "
                f"{align['mean']:.2f}: local gradient information points poorly toward the "
                "solution training reached.",
                {"mean_cosine": align["mean"], "steps": align["steps"], "cosine": align["cosine"]},
                tip,
            )
        )
    mli = lin.get("interpolation")
    if mli and mli["loss"] and mli["largest_bump"] > MLI_BUMP * max(abs(mli["loss"][0]), 1e-12):
        found.append(
            _finding(
                "interpolation_barrier",
                "info",
                f"The loss on the straight line from initialization to the solution rises by "
                f"{mli['largest_bump']:.3g} (at alpha = {mli['bump_alpha']}): a barrier lies "
                "between them. Common in nets trained far from initialization; it matters "
                "together with poor alignment.",
                {
                    "largest_bump": mli["largest_bump"],
                    "bump_alpha": mli["bump_alpha"],
                    "loss_at_init": mli["loss"][0],
                },
                tip,
            )
        )
    return found


def optimizer_findings(spec: ExperimentSpec, result: dict[str, Any]) -> list[dict[str, Any]]:
    """A learning rate above the sharpness stability limit; frozen or thrashing layers."""
    found = []
    for probe in (result.get("curvature") or {}).get("probes", []):
        if probe["ratio"] is not None and probe["ratio"] > 1:
            found.append(
                _finding(
                    "lr_above_stability_threshold",
                    "warning",
                    f"At step {probe['step']} the top Hessian eigenvalue "
                    f"{probe['top_eigenvalue']:.3g} exceeds SGD+momentum's stability limit "
                    "2(1+beta)/eta = "
                    f"{probe['stability_threshold']:.3g}.",
                    {k: probe[k] for k in ("step", "top_eigenvalue", "stability_threshold", "lr")},
                    "lower the learning rate below the limit, or warm it up",
                )
            )
            break
    gf = result.get("gradient_flow") or {}
    ratios: dict[str, list[float]] = {}
    for probe in gf.get("probes", []):
        for name, value in zip(
            gf["weight_layers"], probe.get("update_to_weight") or [], strict=False
        ):
            if value is not None:
                ratios.setdefault(name, []).append(value)
    medians = {k: sorted(v)[len(v) // 2] for k, v in ratios.items() if v}
    frozen = {k: v for k, v in medians.items() if v < FROZEN}
    thrashing = {k: v for k, v in medians.items() if v > THRASHING}
    if frozen:
        found.append(
            _finding(
                "frozen_layers",
                "warning",
                f"{len(frozen)} layer(s) change by less than {FROZEN:g} of their norm per update "
                "(median over probes): they are effectively frozen.",
                {"median_update_to_weight": frozen},
                "raise the learning rate or fix the gradient flow to those layers",
            )
        )
    if thrashing:
        found.append(
            _finding(
                "thrashing_layers",
                "warning",
                f"{len(thrashing)} layer(s) change by more than {THRASHING:g} of their norm per "
                "update (median over probes): updates are too large to settle.",
                {"median_update_to_weight": thrashing},
                "lower the learning rate, or clip the gradient norm",
            )
        )
    return found


def findings(spec: ExperimentSpec, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every finding for a result, most severe first."""
    d = design_facts(spec)
    gf = result.get("gradient_flow") or {}
    found = [
        *divergence_findings(spec, result["summary"]),
        *gradient_flow_findings(d, gf.get("probes", [])),
        *recurrent_findings(d, gf.get("recurrent") or []),
        *slope_findings((result.get("linearity") or {}).get("probes") or []),
        *linearity_findings(d, result),
        *optimizer_findings(spec, result),
    ]
    order = {"critical": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda f: order[f["severity"]])
