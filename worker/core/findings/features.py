"""The scalar each rule thresholds, read from a result: one home for "what a rule looks at".

Each function returns the score and the evidence behind it, or None when the diagnostic it needs
did not run. The calibration script computes the same scores on the benchmark, so a threshold is
chosen on exactly the number the rule compares.
"""

from __future__ import annotations

import math
from typing import Any

RESIDUAL_BODY = ".residual.body."  # in the names of layers inside a residual branch
LOCAL_SCALE = 0.1  # relative input step at which local linearity is judged

Score = tuple[float, dict[str, Any]]


def _log10(x: float | None) -> float | None:
    if x is None or not math.isfinite(x) or x <= 0:
        return None
    return math.log10(x)


def _gf_probes(result: dict[str, Any]) -> list[dict[str, Any]]:
    return list((result.get("gradient_flow") or {}).get("probes") or [])


def init_gradient_ratio(result: dict[str, Any]) -> Score | None:
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


def final_gradient_ratio(result: dict[str, Any]) -> Score | None:
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


def init_saturated_share(result: dict[str, Any]) -> Score | None:
    """Largest share of saturated pre-activations in a layer at step 0."""
    probes = _slope_probes(result)
    return _worst_share(probes[0], "saturated_share") if probes else None


def final_dead_share(result: dict[str, Any]) -> Score | None:
    """Largest share of dead units in a layer at the last probe (units that die and recover
    during training are not a lasting problem)."""
    probes = _slope_probes(result)
    return _worst_share(probes[-1], "dead_unit_share") if probes else None


def init_dead_share(result: dict[str, Any]) -> Score | None:
    probes = _slope_probes(result)
    return _worst_share(probes[0], "dead_unit_share") if probes else None


def _memory(probe: dict[str, Any]) -> Score | None:
    """The worst layer's reach; a horizon of None means the gradient spans the whole sequence."""
    layers = [layer for layer in probe.get("layers", []) if layer.get("steps")]
    if not layers:
        return None

    def reach(layer: dict[str, Any]) -> int:
        horizon = layer.get("memory_horizon")
        return int(layer["steps"] if horizon is None else horizon)

    worst = min(layers, key=lambda layer: reach(layer) / layer["steps"])
    return reach(worst) / worst["steps"], {
        "step": probe["step"], "layer": worst["layer"], "kind": worst["kind"],
        "memory_horizon": reach(worst), "sequence_length": worst["steps"],
        "per_step_gain": worst.get("per_step_gain"),
    }


def init_memory_reach(result: dict[str, Any]) -> Score | None:
    """Memory horizon as a share of the sequence length at step 0 (worst recurrent layer)."""
    probes = (result.get("gradient_flow") or {}).get("recurrent") or []
    return _memory(probes[0]) if probes else None


def final_memory_reach(result: dict[str, Any]) -> Score | None:
    probes = (result.get("gradient_flow") or {}).get("recurrent") or []
    return _memory(probes[-1]) if len(probes) > 1 else None


def init_local_linearity(result: dict[str, Any]) -> Score | None:
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


def alignment(result: dict[str, Any]) -> Score | None:
    """Mean cosine of -gradient with the direction to the final weights, over probes."""
    align = (result.get("trajectory") or {}).get("alignment")
    if not align or align.get("mean") is None:
        return None
    return float(align["mean"]), {"mean_cosine": align["mean"], "steps": align.get("steps")}


def interpolation_bump(result: dict[str, Any]) -> Score | None:
    """Largest rise of the loss on the line from init to solution, relative to L(theta_0)."""
    mli = (result.get("linearity") or {}).get("interpolation")
    if not mli or not mli.get("loss"):
        return None
    base = max(abs(mli["loss"][0]), 1e-12)
    return mli["largest_bump"] / base, {"largest_bump": mli["largest_bump"],
                                        "bump_alpha": mli["bump_alpha"],
                                        "loss_at_init": mli["loss"][0]}


def sharpness_ratio(result: dict[str, Any]) -> Score | None:
    """Largest top-Hessian-eigenvalue / stability-threshold ratio over probes."""
    probes = [p for p in (result.get("curvature") or {}).get("probes", [])
              if p.get("ratio") is not None]
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


def min_update_ratio(result: dict[str, Any]) -> Score | None:
    """log10 of the smallest per-layer median update-to-weight ratio."""
    medians = _update_medians(result)
    if not medians:
        return None
    name = min(medians, key=lambda k: medians[k])
    return math.log10(medians[name]), {"layer": name, "median_update_to_weight": medians}


def max_update_ratio(result: dict[str, Any]) -> Score | None:
    medians = _update_medians(result)
    if not medians:
        return None
    name = max(medians, key=lambda k: medians[k])
    return math.log10(medians[name]), {"layer": name, "median_update_to_weight": medians}


def diverged(result: dict[str, Any]) -> Score | None:
    summary = result.get("summary") or {}
    if summary.get("outcome") != "diverged":
        return 0.0, {}
    return 1.0, {"diverged_at_step": summary.get("diverged_at_step")}
