"""The rules as data: what each looks at, which way is bad, and its calibrated threshold.

A rule fires when its feature (``features.py``) is beyond its threshold. Thresholds, severities
and measured precision live in ``calibration.json`` beside this module, written by
``bench/findings/calibrate.py`` from the dev split of the labeled benchmark (labels from
training outcomes); ``default`` here is only the fallback for a rule the benchmark has not
calibrated, and says so in the finding (``calibrated: false``).

Severity means: ``critical`` the design will not train as specified; ``warning`` it trains
worse than a documented fix; ``info`` worth knowing (a number that did not separate healthy
from faulty designs on the benchmark stays an ``info``).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from typing import Any, Literal

from worker.core.findings import features as f
from worker.core.findings import transformer_rules as tf
from worker.core.spec import ExperimentSpec

Severity = Literal["info", "warning", "critical"]
Direction = Literal["below", "above"]
Feature = Callable[[dict[str, Any], ExperimentSpec], f.Score | None]


@dataclass(frozen=True)
class Rule:
    code: str
    feature: Feature
    direction: Direction  # the rule fires when the feature is below/above the threshold
    default: float  # fallback threshold, used only where calibration.json has none
    default_severity: Severity
    at_init: bool  # judged on the step-0 probe alone: preflight and init_seeds can tell
    pathology: str  # the benchmark class whose one-change fix addresses it
    what: str  # the feature in words, for the catalog and the calibration report

    def fires(self, value: float, threshold: float) -> bool:
        return value < threshold if self.direction == "below" else value > threshold


RULES: tuple[Rule, ...] = (
    Rule("diverged", f.diverged, "above", 0.5, "critical", False, "lr_too_high",
         "1 when the loss became non-finite"),
    Rule("vanishing_gradients_at_init", f.init_gradient_ratio, "below", -2.0, "critical", True,
         "vanishing_gradients", "log10 end-to-end gradient ratio (first/last hidden) at step 0"),
    Rule("exploding_gradients_at_init", f.init_gradient_ratio, "above", 2.0, "critical", True,
         "exploding_gradients", "log10 end-to-end gradient ratio at step 0"),
    Rule("saturated_units", f.init_saturation, "below", -1.0, "warning", True,
         "saturated_units", "log10 smallest E[phi'^2] of a saturating activation layer, step 0"),
    Rule("dead_units", f.final_dead_share, "above", 0.5, "warning", False, "dead_units",
         "largest share of dead units in a layer at the last probe"),
    Rule("vanishing_gradients_through_time", f.init_memory_reach, "below", 0.5, "warning", True,
         "short_memory",
         "memory horizon / sequence length at step 0 (longest reach of the vanilla RNN layers)"),
    Rule("lstm_forget_gate_closed", f.init_forget_gate, "below", 0.3, "warning", True,
         "short_memory", "smallest mean LSTM forget-gate activation at step 0"),
    Rule("short_memory_after_training", f.final_memory_reach, "below", 0.5, "warning", False,
         "short_memory", "memory horizon / sequence length at the last probe (longest reach "
         "of the recurrent layers)"),
    Rule("not_locally_linear", f.init_local_linearity, "above", 0.0, "warning", True,
         "jagged_activation", "log10 median first-order error at a 10% input step, step 0"),
    Rule("gradient_misaligned_with_solution", f.alignment, "below", 0.1, "info", False,
         "none", "mean cosine of -gradient with the direction to the final weights"),
    Rule("interpolation_barrier", f.interpolation_bump, "above", 0.05, "info", False, "none",
         "largest loss bump on the init-to-solution line / L(theta_0)"),
    Rule("lr_above_stability_threshold", f.sharpness_ratio, "above", 1.0, "warning", False,
         "lr_too_high", "top Hessian eigenvalue / SGD+momentum stability limit 2(1+beta)/eta "
         "(no batch-norm networks)"),
    Rule("lr_above_stability_threshold_at_init", f.init_sharpness_ratio, "above", 1.0, "warning",
         True, "lr_too_high",
         "top Hessian eigenvalue / 2(1+beta)/eta at step 0 (no batch-norm networks)"),
    Rule("step_too_large_at_init", f.init_hidden_step, "above", -1.0, "warning", True,
         "lr_too_high", "log10 largest hidden-layer step lr*|grad W|/|W|/(1-beta) at step 0"),
    Rule("step_too_small_at_init", f.init_fastest_step, "below", -5.0, "warning", True,
         "lr_too_low_or_frozen", "log10 largest per-layer step lr*|grad W|/|W|/(1-beta), step 0"),
    Rule("frozen_layers", f.min_update_ratio, "below", -6.0, "warning", False,
         "lr_too_low_or_frozen", "log10 smallest per-layer median update-to-weight ratio"),
    Rule("thrashing_layers", f.max_update_ratio, "above", -1.0, "warning", False, "lr_too_high",
         "log10 largest per-layer median update-to-weight ratio"),
    # Attention models (worker/core/findings/transformer_rules.py): calibrated on the attention
    # batch (bench/findings/cases3.py); these defaults are only the fallback.
    Rule("rank_collapse", tf.init_rank_collapse, "above", 0.9, "critical", True,
         "rank_collapse", "largest mean pairwise token cosine after a block, step 0"),
    Rule("attention_entropy_collapse", tf.final_attention_entropy, "below", 0.1, "warning",
         False, "entropy_collapse", "lowest head's attention entropy / its maximum, last probe"),
    Rule("post_ln_without_warmup", tf.post_ln_gradient_ratio, "above", 0.1, "warning", True,
         "post_ln", "log10 last/first block gradient norm at step 0 (Post-LN, no warm-up)"),
    Rule("residual_stream_growth", tf.init_stream_growth, "above", 10.0, "warning", True,
         "stream_growth", "residual-stream variance, last block / first block, step 0"),
)
RULES_BY_CODE = {rule.code: rule for rule in RULES}


@dataclass(frozen=True)
class Calibration:
    """One rule's calibrated threshold and what it scored on the benchmark."""

    threshold: float
    severity: Severity
    calibrated: bool
    source: str = ""
    precision: dict[str, float | None] = field(default_factory=dict)  # split -> precision
    recall: dict[str, float | None] = field(default_factory=dict)
    firings: dict[str, int] = field(default_factory=dict)

    def public(self) -> dict[str, Any]:
        return {"threshold": self.threshold, "calibrated": self.calibrated,
                "source": self.source, "precision": self.precision, "recall": self.recall,
                "firings": self.firings}


CALIBRATION_FILE = "calibration.json"


@lru_cache(maxsize=1)
def load_calibration() -> dict[str, Calibration]:
    """Every rule's calibration: calibration.json where it has the rule, else the default."""
    try:
        raw = json.loads(resources.files(__package__).joinpath(CALIBRATION_FILE).read_text())
    except FileNotFoundError:
        raw = {}
    out = {}
    for rule in RULES:
        entry = raw.get("rules", {}).get(rule.code)
        if entry is None:
            out[rule.code] = Calibration(rule.default, rule.default_severity, False,
                                         "not calibrated: hand-set default")
        else:
            out[rule.code] = Calibration(
                float(entry["threshold"]), entry["severity"], True,
                entry.get("source", raw.get("source", "")),
                entry.get("precision", {}), entry.get("recall", {}), entry.get("firings", {}),
            )
    return out
