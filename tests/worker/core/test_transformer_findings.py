"""The attention findings on constructed results: each fires on one side of its threshold only,
carries its numbers, and offers fixes that are valid specs which change the design."""

from __future__ import annotations

from typing import Any

import pytest

from worker.core.design import design_facts
from worker.core.findings import apply_edits, findings, fixes_for
from worker.core.findings.remedies import is_valid
from worker.core.findings.rules import RULES_BY_CODE, load_calibration
from worker.core.findings.transformer_rules import CODES
from worker.core.spec import ExperimentSpec

CAL = load_calibration()
TASK = {"kind": "markov_language", "vocab": 8, "order": 1, "length": 12}
FAMILY = {"spec_version": 1, "data": TASK, "training": {"steps": 100},
          "model": {"family": "transformer", "depth": 4, "width": 16, "heads": 2,
                    "norm_position": "post"}}
LAYERS = {**FAMILY, "model": {"layers": [
    {"type": "embedding", "dim": 16}, {"type": "self_attention", "heads": 2},
    {"type": "self_attention", "heads": 2},
    {"type": "transformer_block", "heads": 2, "norm_position": "post"}]}}
BLOCKS = ["2.transformer_block", "3.transformer_block", "4.transformer_block",
          "5.transformer_block"]


def section(code: str, value: float) -> dict[str, Any]:
    """A ``transformer`` section whose feature for ``code`` is ``value``."""
    if code == "rank_collapse":
        cos = [value / 2, value]
        return {"rank_collapse": {"blocks": BLOCKS[:2], "probes": [
            {"step": 0, "input_cosine": 0.01, "input_relative_residual": 0.9, "cosine": cos,
             "relative_residual": [0.5, 0.1]}]}}
    if code == "attention_entropy_collapse":
        layer = {"layer": "2.transformer_block.attention", "entropy": [value * 2.0, 1.5],
                 "max_entropy": 2.0, "normalized": [value, 0.75], "logit_std": [9.0, 1.0]}
        calm = {**layer, "entropy": [1.8, 1.8], "normalized": [0.9, 0.9]}
        return {"attention_entropy": {"layers": [layer["layer"]], "probes": [
            {"step": 0, "layers": [calm]}, {"step": 100, "layers": [layer]}]}}
    if code == "post_ln_without_warmup":
        return {"block_gradients": {"blocks": BLOCKS, "norm_position": ["post"] * 4,
                                    "warmup_steps": 0, "probes": [
            {"step": 0, "grad_norm": [0.1, 0.2, 0.3, 0.1 * 10**value],
             "last_to_first": 10**value}]}}
    assert code == "residual_stream_growth"
    blocks = [{"block": b, "output_variance": v, "output_mean_sq": 0.0, "branches": []}
              for b, v in zip(BLOCKS, [1.0, 2.0, 3.0, value], strict=True)]
    return {"signal_propagation": {"blocks": BLOCKS, "probes": [{"step": 0, "blocks": blocks}],
                                   "variance_growth_at_init": value}}


def result(code: str, value: float) -> dict[str, Any]:
    return {"summary": {"outcome": "completed", "planned_steps": 100, "final_val_loss": 1.0,
                        "baseline_val_loss": 2.0}, "transformer": section(code, value)}


@pytest.mark.parametrize("code", sorted(CODES))
def test_each_attention_rule_fires_on_one_side_only(code):
    rule, threshold = RULES_BY_CODE[code], CAL[code].threshold
    step = max(abs(threshold) * 0.2, 0.05)
    bad, good = ((threshold - step, threshold + step) if rule.direction == "below"
                 else (threshold + step, threshold - step))
    spec = ExperimentSpec.model_validate(FAMILY)
    fired = [f for f in findings(spec, result(code, bad)) if f["code"] == code]
    assert [f for f in findings(spec, result(code, good)) if f["code"] == code] == []
    assert len(fired) == 1
    assert fired[0]["evidence"]["value"] == pytest.approx(bad)
    assert fired[0]["message"] and fired[0]["fixes"], fired[0]
    for fix in fired[0]["fixes"]:
        edited = apply_edits(FAMILY, fix["edits"])
        assert is_valid(edited) and edited != FAMILY, fix


def test_post_ln_rule_needs_post_ln_without_warmup():
    bad = result("post_ln_without_warmup", 1.0)
    for doc in ({**FAMILY, "model": {**FAMILY["model"], "norm_position": "pre"}},
                {**FAMILY, "model": {**FAMILY["model"], "residual_scale": "deepnorm"}},
                {**FAMILY, "optimizer": {"schedule": {"warmup_steps": 10}}}):
        spec = ExperimentSpec.model_validate(doc)
        assert "post_ln_without_warmup" not in {f["code"] for f in findings(spec, bad)}


@pytest.mark.parametrize("code", sorted(CODES))
def test_fixes_on_the_layers_form_are_valid_edits(code):
    spec = ExperimentSpec.model_validate(LAYERS)
    for fix in fixes_for(code, LAYERS, design_facts(spec)):
        edited = apply_edits(LAYERS, list(fix.edits))
        assert is_valid(edited) and edited != LAYERS, (code, fix)
    labels = {fix.label for fix in fixes_for(code, LAYERS, design_facts(spec))}
    if code == "rank_collapse":  # both bare attention layers get a skip
        skip = next(f for f in fixes_for(code, LAYERS, design_facts(spec))
                    if f.label.startswith("skip"))
        assert [e["path"] for e in skip.edits] == ["model.layers.1", "model.layers.2"]
    if code == "post_ln_without_warmup":
        assert any(label.startswith("DeepNorm") for label in labels)
