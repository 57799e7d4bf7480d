"""The scalar each rule thresholds, read from a result: one home for "what a rule looks at".

Each function takes the result and the spec it ran, and returns the score and the evidence
behind it, or None when the diagnostic it needs did not run. The calibration script computes the
same scores on the benchmark, so a threshold is chosen on exactly the number the rule compares.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from worker.core.design import SATURATING, design_facts
from worker.core.spec import ExperimentSpec

RESIDUAL_BODY = ".residual.body."  # in the names of layers inside a residual branch
LOCAL_SCALE = 0.1  # relative input step at which local linearity is judged

Score = tuple[float, dict[str, Any]]


def _log10(x: float | None) -> float | None:
    if x is None or not math.isfinite(x) or x <= 0:
        return None
    return math.log10(x)


def _gf_probes(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list((result.get("gradient_flow") or {}).get("probes") or [])


def init_gradient_ratio(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """log10 of the end-to-end gradient ratio (first hidden / last hidden) at step 0."""
    probes = _gf_probes(result)
    if not probes or probes[0]["step"] != 0:
        return None
    first = probes[0]
    value = _log10(first.get("end_to_end_ratio"))
    if value is None:
        return None
    return value, {k: first.get(k) for k in ("step", "end_to_end_ratio", "gain_geomean",
                                              "gain_db")}


def final_gradient_ratio(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """log10 of the end-to-end ratio at the last probe after step 0."""
    probes = _gf_probes(result)
    if len(probes) < 2:
        return None
    last = probes[-1]
    value = _log10(last.get("end_to_end_ratio"))
    if value is None:
        return None
    return value, {"step": last["step"], "end_to_end_ratio": last["end_to_end_ratio"]}


def _slope_probes(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list((result.get("linearity") or {}).get("probes") or [])


def _worst_share(probe: dict[str, Any], key: str) -> Score | None:
    """Largest share among layers outside residual branches (a skip still carries the
    gradient around a saturated branch)."""
    layers = {n["layer"]: n[key] for n in probe.get("nonlinearities", [])
              if n.get(key) is not None and RESIDUAL_BODY not in n["layer"]}
    if not layers:
        return None
    worst = max(layers, key=lambda name: layers[name])
    return float(layers[worst]), {"step": probe["step"], "layer": worst,
                                  "share": layers[worst], "layers": layers}


def init_saturation(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """log10 of the smallest E[phi'(z)^2] among layers of saturating activations (sigmoid,
    tanh, hard_tanh) outside residual branches, at step 0: the factor by which each such layer
    scales the squared gradient (it enters chi_1). The share of saturated units alone did not
    separate healthy from faulty designs (an easy task trains through 81% saturation)."""
    probes = _slope_probes(result)
    if not probes:
        return None
    layers = {n["layer"]: n for n in probes[0].get("nonlinearities", [])
              if n.get("activation") in SATURATING and n.get("mean_sq_derivative")
              and RESIDUAL_BODY not in n["layer"]}
    if not layers:
        return None
    worst = min(layers, key=lambda name: layers[name]["mean_sq_derivative"])
    item = layers[worst]
    return math.log10(item["mean_sq_derivative"]), {
        "step": probes[0]["step"], "layer": worst, "activation": item["activation"],
        "mean_sq_derivative": item["mean_sq_derivative"],
        "saturated_share": item.get("saturated_share"),
    }


def final_dead_share(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """Largest share of dead units in a layer at the last probe (units that die and recover
    during training are not a lasting problem)."""
    probes = _slope_probes(result)
    return _worst_share(probes[-1], "dead_unit_share") if probes else None


def init_dead_share(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    probes = _slope_probes(result)
    return _worst_share(probes[0], "dead_unit_share") if probes else None


def _memory(probe: dict[str, Any], kinds: frozenset[str]) -> Score | None:
    """How far back the loss reaches: the longest reach among the recurrent layers (a horizon
    of None means the gradient spans the whole sequence).

    The longest, not the shortest: in a stack, dL/dh_t of the lowest layer already sums every
    path through the layers above it, so an upper layer whose own chain forgets fast (a 2-layer
    LSTM's top layer: 8 of 20 steps, over a bottom layer that spans all 20) does not shorten
    the design's memory; and where an input skips to an upper layer, that layer's reach is a
    path of its own.
    """
    layers = [layer for layer in probe.get("layers", [])
              if layer.get("steps") and layer.get("kind") in kinds]
    if not layers:
        return None

    def reach(layer: dict[str, Any]) -> int:
        horizon = layer.get("memory_horizon")
        return int(layer["steps"] if horizon is None else horizon)

    best = max(layers, key=lambda layer: reach(layer) / layer["steps"])
    return reach(best) / best["steps"], {
        "step": probe["step"], "layer": best["layer"], "kind": best["kind"],
        "memory_horizon": reach(best), "sequence_length": best["steps"],
        "per_step_gain": best.get("per_step_gain"),
    }


def _recurrent_probes(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list((result.get("gradient_flow") or {}).get("recurrent") or [])


def init_memory_reach(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """Memory horizon / sequence length at step 0 of the vanilla RNN layers (``_memory``). Gated
    layers learn to extend their reach (their init horizon did not separate healthy from
    faulty designs); a vanilla RNN keeps the one it starts with."""
    probes = _recurrent_probes(result)
    return _memory(probes[0], frozenset({"rnn"})) if probes else None


def final_memory_reach(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """Memory horizon / sequence length at the last probe, any recurrent layer."""
    probes = _recurrent_probes(result)
    return _memory(probes[-1], frozenset({"rnn", "gru", "lstm"})) if len(probes) > 1 else None


def init_forget_gate(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """Smallest mean forget-gate activation of an LSTM layer at step 0: a gate that starts
    nearly closed forgets within a few steps (what gates would otherwise learn to keep)."""
    probes = _recurrent_probes(result)
    layers = [layer for layer in (probes[0].get("layers", []) if probes else [])
              if layer.get("forget_gate_mean") is not None]
    if not layers:
        return None
    worst = min(layers, key=lambda layer: layer["forget_gate_mean"])
    return float(worst["forget_gate_mean"]), {
        "step": probes[0]["step"], "layer": worst["layer"],
        "forget_gate_mean": worst["forget_gate_mean"], "memory_horizon": worst["memory_horizon"],
        "sequence_length": worst["steps"],
    }


def init_local_linearity(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """log10 of the median first-order error at a 10% input step, at step 0."""
    local = ((result.get("linearity") or {}).get("local_linearity") or {}).get("probes") or []
    if not local or local[0]["step"] != 0:
        return None
    first = local[0]
    scales = first["scales"]
    i = min(range(len(scales)), key=lambda k: abs(math.log(scales[k] / LOCAL_SCALE)))
    value = _log10(first["median_error"][i])
    if value is None:
        return None
    return value, {"step": 0, "scale": scales[i], "median_error": first["median_error"][i]}


def alignment(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """Mean cosine of -gradient with the direction to the final weights, over probes."""
    align = (result.get("trajectory") or {}).get("alignment")
    if not align or align.get("mean") is None:
        return None
    return float(align["mean"]), {"mean_cosine": align["mean"], "steps": align.get("steps")}


def interpolation_bump(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """Largest rise of the loss on the line from init to solution, relative to L(theta_0)."""
    mli = (result.get("linearity") or {}).get("interpolation")
    if not mli or not mli.get("loss"):
        return None
    base = max(abs(mli["loss"][0]), 1e-12)
    return mli["largest_bump"] / base, {"largest_bump": mli["largest_bump"],
                                        "bump_alpha": mli["bump_alpha"],
                                        "loss_at_init": mli["loss"][0]}


def _stability_probes(result: dict[str, Any], spec: ExperimentSpec) -> list[dict[str, Any]]:
    """The curvature probes the SGD stability limit 2(1+beta)/eta speaks about: none for a
    network with batch norm. Batch norm makes the loss invariant to the scale of the weights
    before it, so SGD's effective step there is eta/||W||^2, and ||W|| grows while it trains:
    the step sizes itself down (Arora, Li & Lyu 2019, auto rate-tuning), and a top eigenvalue
    above the limit at one moment does not say the run will bounce. On the benchmark's dev
    split the three healthy designs furthest above the limit were batch-norm MLPs (4.4 to 5.3
    times it, training well), above most designs that failed from too high a rate."""
    if design_facts(spec).batch_norm:
        return []
    return [p for p in (result.get("curvature") or {}).get("probes", [])
            if p.get("ratio") is not None]


def sharpness_ratio(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """Largest top-Hessian-eigenvalue / stability-threshold ratio over probes (not for
    batch-norm networks: ``_stability_probes``)."""
    probes = _stability_probes(result, spec)
    if not probes:
        return None
    worst = max(probes, key=lambda p: p["ratio"])
    return float(worst["ratio"]), {k: worst.get(k) for k in
                                   ("step", "top_eigenvalue", "stability_threshold", "lr")}


def _update_medians(result: dict[str, Any]) -> dict[str, float]:
    gf = result.get("gradient_flow") or {}
    ratios: dict[str, list[float]] = {}
    for probe in gf.get("probes", []):
        for name, value in zip(gf.get("weight_layers", []), probe.get("update_to_weight") or [],
                               strict=False):
            if value is not None and value > 0:
                ratios.setdefault(name, []).append(value)
    return {k: sorted(v)[len(v) // 2] for k, v in ratios.items() if v}


def _extreme_update_ratio(result: dict[str, Any], pick: Callable[..., str]) -> Score | None:
    """log10 of the per-layer median update-to-weight ratio that ``pick`` (min or max)
    chooses, naming its layer."""
    medians = _update_medians(result)
    if not medians:
        return None
    name = pick(medians, key=lambda k: medians[k])
    return math.log10(medians[name]), {"layer": name, "median_update_to_weight": medians}


def min_update_ratio(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """log10 of the smallest per-layer median update-to-weight ratio."""
    return _extreme_update_ratio(result, min)


def max_update_ratio(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """log10 of the largest per-layer median update-to-weight ratio."""
    return _extreme_update_ratio(result, max)


def diverged(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    summary = result.get("summary") or {}
    if summary.get("outcome") != "diverged":
        return 0.0, {}
    return 1.0, {"diverged_at_step": summary.get("diverged_at_step")}


def init_sharpness_ratio(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """Top Hessian eigenvalue / SGD+momentum stability limit at step 0 (a preflight can tell;
    not for batch-norm networks: ``_stability_probes``)."""
    probes = [p for p in _stability_probes(result, spec) if p["step"] == 0]
    if not probes:
        return None
    first = probes[0]
    return float(first["ratio"]), {k: first.get(k) for k in
                                   ("step", "top_eigenvalue", "stability_threshold", "lr")}


def _init_steps(result: dict[str, Any], spec: ExperimentSpec) -> list[tuple[str | None, float]]:
    """Per layer, the relative step SGD+momentum would take from the step-0 gradient:
    lr * ||grad W|| / ||W|| / (1 - momentum) (momentum's steady-state gain)."""
    probes = _gf_probes(result)
    if not probes or probes[0]["step"] != 0:
        return []
    ratios = probes[0].get("grad_to_weight_ratio") or []
    layers = (result.get("gradient_flow") or {}).get("weight_layers") or []
    names: list[str | None] = list(layers) if len(layers) == len(ratios) else [None] * len(ratios)
    o = spec.optimizer
    gain = 1.0 / max(1.0 - o.momentum, 1e-3)
    return [(name, o.lr * r * gain) for name, r in zip(names, ratios, strict=True)
            if r is not None and r > 0]


def _step_score(steps: list[tuple[str | None, float]], pick: tuple[str | None, float],
                spec: ExperimentSpec, what: str) -> Score:
    return math.log10(pick[1]), {"step": 0, "effective_step": pick[1], "layer": pick[0],
                                 "which": what, "lr": spec.optimizer.lr,
                                 "momentum": spec.optimizer.momentum}


def init_fastest_step(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """log10 of the largest per-layer relative step at step 0: if even the fastest layer
    barely moves, the run is frozen."""
    steps = _init_steps(result, spec)
    if not steps:
        return None
    return _step_score(steps, max(steps, key=lambda s: s[1]), spec, "fastest layer")


def init_hidden_step(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """log10 of the largest relative step of a hidden layer at step 0 (the head is left out:
    a small head behind a residual stream that grows with depth takes large relative steps
    at init in designs that train well)."""
    steps = [s for s in _init_steps(result, spec) if s[0] != "head"]
    if not steps:
        return None
    return _step_score(steps, max(steps, key=lambda s: s[1]), spec, "fastest hidden layer")
