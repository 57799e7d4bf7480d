"""Transformers through the whole service, same task and SGD + momentum budget for every design.

Post-LN against Pre-LN at depth 12 (a bigram Markov language, vocab 16, 16 steps; best loss
1.959 nats, the constant predictor 2.73; 300 steps x 32, lr 0.6, momentum 0.9; d_model 16,
2 heads, MLP ratio 2). Measured with ``run_experiment`` (the worker's code), seeds 0-2:

- Pre-LN reaches 2.02-2.04; Post-LN without warm-up stays at the constant predictor's loss
  (2.725-2.739) and shows Xiong et al.'s init signature: its last block's gradient is larger
  than its first's, Pre-LN's is not;
- DeepNorm (Post-LN with the DeepNet alpha and beta) closes most of the gap (2.05, seed 0);
- a linear warm-up over 20% (or even 50%) of the run does *not* rescue Post-LN under plain SGD at
  this learning rate (2.73): it is not asserted, and it is shown in docs/transformers.md.

Attention without skips (six bidirectional self-attention layers on a copy task) collapses the
tokens to one at init (cosine > 0.999) and is flagged; the same stack with skips is not.
"""

from __future__ import annotations

from typing import Any

import pytest

TASK = {"kind": "markov_language", "vocab": 16, "order": 1, "length": 16,
        "n_train": 2048, "n_val": 512}


def post_vs_pre(norm_position: str, residual_scale: Any = 1.0) -> dict[str, Any]:
    return {
        "spec_version": 1,
        "name": f"{norm_position}-LN, residual scale {residual_scale}",
        "model": {"family": "transformer", "depth": 12, "width": 16, "heads": 2,
                  "mlp_ratio": 2, "norm_position": norm_position,
                  "residual_scale": residual_scale},
        "data": TASK,
        "optimizer": {"lr": 0.6, "momentum": 0.9},
        "training": {"steps": 300, "batch_size": 32, "seed": 0, "device": "cpu"},
        "diagnostics": {"preset": "basic", "probe_batch_size": 128, "every": 150},
    }


def attention_stack(skips: bool) -> dict[str, Any]:
    attention: dict[str, Any] = {"type": "self_attention", "heads": 4, "causal": False}
    block = {"type": "residual", "body": [attention]} if skips else attention
    return {
        "spec_version": 1,
        "name": f"6 attention layers, skips {skips}",
        "model": {"layers": [{"type": "embedding", "dim": 32},
                             {"type": "positional_encoding"}, *[block] * 6]},
        "data": {"kind": "token_copy", "length": 5, "alphabet": 6, "causal": False,
                 "n_train": 1024, "n_val": 256},
        "optimizer": {"lr": 0.1, "momentum": 0.9},
        "training": {"steps": 100, "batch_size": 32, "seed": 0, "device": "cpu"},
        "diagnostics": {"preset": "standard", "probe_batch_size": 64},
    }


@pytest.fixture(scope="module")
def results(e2e_server, run_all) -> dict[str, dict[str, Any]]:
    specs = {
        "pre": post_vs_pre("pre"), "post": post_vs_pre("post"),
        "deepnorm": post_vs_pre("post", "deepnorm"),
        "pure": attention_stack(False), "skips": attention_stack(True),
    }
    with e2e_server.client() as client:
        jobs = run_all(client, specs, timeout_s=400)
    for job in jobs.values():
        assert job["status"] == "succeeded", job.get("error")
    return {key: job["result"] for key, job in jobs.items()}


def loss(result: dict[str, Any]) -> float:
    value: float = result["summary"]["final_val_loss"]
    return value


def codes(result: dict[str, Any]) -> set[str]:
    return {f["code"] for f in result["findings"]}


def test_post_ln_trains_worse_than_pre_ln_and_deepnorm_closes_the_gap(results):
    pre, post, deep = (results[k] for k in ("pre", "post", "deepnorm"))
    assert pre["summary"]["steps"] == post["summary"]["steps"] == deep["summary"]["steps"] == 300
    baseline = post["summary"]["baseline_val_loss"]  # measured 2.73
    assert loss(pre) < 0.8 * baseline  # measured 2.02
    assert loss(post) > 0.95 * baseline  # measured 2.74: no better than a constant
    gap = loss(post) - loss(pre)
    assert loss(post) - loss(deep) > 0.7 * gap  # measured 2.05: most of the gap closed


def test_post_ln_shows_the_init_gradient_signature_and_is_flagged(results):
    grads = {k: results[k]["transformer"]["block_gradients"] for k in ("pre", "post")}
    assert grads["post"]["norm_position"] == ["post"] * 12
    ratio = {k: g["probes"][0]["last_to_first"] for k, g in grads.items()}
    assert grads["post"]["probes"][0]["step"] == 0
    assert ratio["post"] > 1.5 * ratio["pre"], ratio
    assert "post_ln_without_warmup" in codes(results["post"])
    assert "post_ln_without_warmup" not in codes(results["pre"]) | codes(results["deepnorm"])
    finding = next(f for f in results["post"]["findings"] if f["code"] ==
                   "post_ln_without_warmup")
    labels = {fix["label"].split(" (")[0] for fix in finding["fixes"]}
    assert {"Pre-LN", "learning-rate warm-up", "DeepNorm residual scaling"} <= labels


def test_attention_without_skips_is_flagged_for_rank_collapse(results):
    pure = results["pure"]["transformer"]["rank_collapse"]["probes"][0]
    skips = results["skips"]["transformer"]["rank_collapse"]["probes"][0]
    assert pure["step"] == 0 and pure["cosine"][-1] > 0.999
    assert max(skips["cosine"]) < 0.5
    assert "rank_collapse" in codes(results["pure"])
    assert "rank_collapse" not in codes(results["skips"])
    finding = next(f for f in results["pure"]["findings"] if f["code"] == "rank_collapse")
    assert finding["fixes"][0]["edits"][0]["value"]["type"] == "residual"
    assert loss(results["skips"]) < loss(results["pure"])
