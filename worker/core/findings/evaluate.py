"""Run the rules over a result: the findings, most severe first, and a one-line verdict."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from worker.core.design import DesignFacts, design_facts
from worker.core.findings.remedies import fixes_for
from worker.core.findings.rules import RULES, Calibration, Rule, load_calibration
from worker.core.findings.transformer_rules import MESSAGES as ATTENTION_MESSAGES
from worker.core.spec import ExperimentSpec

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}

Message = Callable[[float, dict[str, Any]], str]
MESSAGES: dict[str, Message] = {
    "diverged": lambda v, e: f"Training diverged: the loss became non-finite at step "
    f"{e.get('diverged_at_step')}.",
    "vanishing_gradients_at_init": lambda v, e: "At initialization the gradient reaching the "
    f"first hidden layer is {e['end_to_end_ratio']:.2e} times the one at the last hidden "
    "layer: early layers barely learn.",
    "exploding_gradients_at_init": lambda v, e: f"At initialization the gradient grows "
    f"{e['end_to_end_ratio']:.2e}-fold from the last hidden layer back to the first.",
    "saturated_units": lambda v, e: f"At initialization {e['layer']} ({e['activation']}) "
    f"passes on only E[phi'^2] = {e['mean_sq_derivative']:.3f} of the squared gradient: most "
    "pre-activations sit where the activation is flat"
    + (f" ({e['saturated_share']:.0%} saturated)." if e.get("saturated_share") else "."),
    "lstm_forget_gate_closed": lambda v, e: f"At initialization the forget gates of "
    f"{e['layer']} are open only {e['forget_gate_mean']:.0%} on average: the cell forgets "
    "within a few steps, before the gates can learn to keep anything.",
    "dead_units": lambda v, e: f"At step {e['step']}, {e['share']:.0%} of the units of "
    f"{e['layer']} are inactive on every probe example: they no longer learn.",
    "vanishing_gradients_through_time": lambda v, e: f"At initialization the gradient in "
    f"{e['layer']} falls below 1% of its last-step value {e['memory_horizon']} of "
    f"{e['sequence_length']} steps back: earlier inputs barely influence learning.",
    "short_memory_after_training": lambda v, e: f"After training (step {e['step']}) the "
    f"gradient in {e['layer']} still reaches only {e['memory_horizon']} of "
    f"{e['sequence_length']} steps back.",
    "not_locally_linear": lambda v, e: f"At initialization a {e['scale']:g}-relative input step "
    f"is predicted by the first-order model with a median error of {e['median_error']:.0%}: "
    "the function bends sharply, so local gradients say little beyond tiny steps.",
    "gradient_misaligned_with_solution": lambda v, e: "The gradient's mean cosine with the "
    f"direction to the final weights is {e['mean_cosine']:.2f}.",
    "interpolation_barrier": lambda v, e: "The loss on the straight line from initialization "
    f"to the solution rises by {e['largest_bump']:.3g} (at alpha = {e['bump_alpha']}): a "
    "barrier lies between them.",
    "lr_above_stability_threshold": lambda v, e: f"At step {e['step']} the top Hessian "
    f"eigenvalue {e['top_eigenvalue']:.3g} exceeds SGD+momentum's stability limit "
    f"2(1+beta)/eta = {e['stability_threshold']:.3g}.",
    "lr_above_stability_threshold_at_init": lambda v, e: "At initialization the top Hessian "
    f"eigenvalue {e['top_eigenvalue']:.3g} already exceeds SGD+momentum's stability limit "
    f"2(1+beta)/eta = {e['stability_threshold']:.3g}: the first steps will overshoot.",
    "step_too_large_at_init": lambda v, e: f"At initialization SGD+momentum would move "
    f"{e['layer']} by {e['effective_step']:.1e} of its norm per step (lr x "
    "|grad|/|W| / (1 - momentum)): steps that large bounce instead of descending.",
    "step_too_small_at_init": lambda v, e: f"At initialization SGD+momentum would move even the "
    f"fastest layer ({e['layer']}) by only {e['effective_step']:.1e} of its norm per step: "
    "training will barely move within the budget.",
    "frozen_layers": lambda v, e: f"Layer {e['layer']} changes by {10**v:.1e} of its norm per "
    "update (median over probes): it is effectively frozen.",
    "thrashing_layers": lambda v, e: f"Layer {e['layer']} changes by {10**v:.1e} of its norm "
    "per update (median over probes): updates are too large to settle.",
}
MESSAGES.update(ATTENTION_MESSAGES)
GENERIC_TIPS = {
    "gradient_misaligned_with_solution": "a metric, not a verdict: on the benchmark it did not "
    "separate healthy from faulty designs",
    "interpolation_barrier": "common in nets trained far from initialization",
}


def _finding(rule: Rule, cal: Calibration, value: float, evidence: dict[str, Any],
             doc: dict[str, Any], design: DesignFacts) -> dict[str, Any]:
    fixes = [fix.public() for fix in fixes_for(rule.code, doc, design)]
    suggestion = "; ".join(fix["label"] for fix in fixes) or GENERIC_TIPS.get(rule.code, "")
    return {
        "code": rule.code,
        "severity": cal.severity,
        "message": MESSAGES[rule.code](value, evidence),
        "evidence": {**evidence, "value": value, "threshold": cal.threshold},
        "suggestion": suggestion,
        "fixes": fixes,
        "at_init": rule.at_init,
        "calibration": cal.public(),
    }


def findings(spec: ExperimentSpec, result: dict[str, Any], *, init_only: bool = False,
             calibration: Mapping[str, Calibration] | None = None) -> list[dict[str, Any]]:
    """Every finding for a result, most severe first (``init_only``: the step-0 rules;
    ``calibration``: thresholds other than calibration.json's, for the calibration script)."""
    calibration = calibration or load_calibration()
    doc = spec.model_dump(mode="json", exclude_none=True)
    design = design_facts(spec)
    found = []
    for rule in RULES:
        if init_only and not rule.at_init:
            continue
        score = rule.feature(result, spec)
        cal = calibration[rule.code]
        if score is not None and rule.fires(score[0], cal.threshold):
            found.append(_finding(rule, cal, score[0], score[1], doc, design))
    return sorted(found, key=lambda x: SEVERITY_ORDER[x["severity"]])


def headline(found: list[dict[str, Any]], summary: dict[str, Any]) -> str:
    """One line that reads as the verdict: the worst finding and what to do, or healthy."""
    loss, base = summary.get("final_val_loss"), summary.get("baseline_val_loss")
    trained = ""
    if summary.get("planned_steps") and loss is not None and base:
        trained = f" Final validation loss is {loss / base:.0%} of the constant predictor's."
    serious = [x for x in found if x["severity"] != "info"]
    if not serious:
        when = "at initialization" if not summary.get("planned_steps") else "in this run"
        return f"No warnings: nothing {when} points to an optimization problem.{trained}"
    top = serious[0]
    label = {"critical": "Will not train as specified", "warning": "Trains worse than it could"}
    fix = f" Try: {top['fixes'][0]['label']}." if top["fixes"] else ""
    more = f" (+{len(serious) - 1} more)" if len(serious) > 1 else ""
    return f"{label[top['severity']]}: {top['code'].replace('_', ' ')}{more}.{fix}{trained}"
