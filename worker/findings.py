"""Plain-language findings: rules over the diagnostics, each with the numbers that fired it.

Suggestions come from the design choices that make models easier to optimize: activations with
significant slope over most of their domain (ReLU, GELU), initialization at the right gain,
skip connections for depth, normalization, and a learning rate the run can sustain.
"""

from __future__ import annotations

from typing import Any, Literal

from worker.design import DesignFacts, design_facts
from worker.spec import ExperimentSpec

Severity = Literal["info", "warning", "critical"]
MAJORITY = 0.5  # share above which saturation or dead units is reported


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
    if first["verdict"] == "vanishing":
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
    elif first["verdict"] == "exploding":
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
    if last is not first and last["verdict"] != "healthy" and last["verdict"] != first["verdict"]:
        found.append(
            _finding(
                f"{last['verdict']}_gradients_after_training",
                "warning",
                f"By step {last['step']} gradient flow became {last['verdict']} "
                f"(end-to-end ratio {last['end_to_end_ratio']:.2e}).",
                {"step": last["step"], "end_to_end_ratio": last["end_to_end_ratio"]},
                _vanishing_suggestion(d)
                if last["verdict"] == "vanishing"
                else _exploding_suggestion(d),
            )
        )
    return found


def slope_findings(spec: ExperimentSpec, probes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Majority-saturated or majority-dead layers, at the first probe where it happens."""
    found = []
    for key, code, what, tip in (
        (
            "saturated_share",
            "saturated_units",
            "saturated (|phi'| below 10% of its maximum)",
            "use a non-saturating activation (relu, gelu), lower the init gain, or normalize "
            "pre-activations",
        ),
        (
            "dead_unit_share",
            "dead_units",
            "dead (inactive on every probe example)",
            "use leaky_relu or gelu, a smaller learning rate, or kaiming initialization",
        ),
    ):
        for probe in probes:
            bad = [
                (n["layer"], n[key])
                for n in probe["nonlinearities"]
                if n[key] is not None and n[key] > MAJORITY
            ]
            if bad:
                worst = max(bad, key=lambda b: b[1])
                found.append(
                    _finding(
                        code,
                        "warning",
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


def findings(spec: ExperimentSpec, result: dict[str, Any]) -> list[dict[str, Any]]:
    """Every finding for a result, most severe first."""
    found = [
        *divergence_findings(spec, result["summary"]),
        *gradient_flow_findings(
            design_facts(spec), result.get("gradient_flow", {}).get("probes", [])
        ),
        *slope_findings(spec, result.get("linearity", {}).get("probes", [])),
    ]
    order = {"critical": 0, "warning": 1, "info": 2}
    return sorted(found, key=lambda f: order[f["severity"]])
