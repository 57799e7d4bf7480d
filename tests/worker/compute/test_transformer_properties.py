"""Property: an attention design on a token task either is refused cleanly (ValidationError, or a
ShapeError naming the model or a layer) or builds with the analyzed parameter count and output
shape and trains a step through the real pipeline with every attention diagnostic."""

from __future__ import annotations

import json
from typing import Any

import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from worker.compute.data import make_dataset
from worker.compute.model import build_model
from worker.compute.pipeline import run_experiment
from worker.core.spec import ExperimentSpec, ShapeError, analyze

small = st.integers(1, 3)
causal = st.booleans()
splits = {"n_train": st.just(16), "n_val": st.just(8)}
TOKEN_DATA = [
    st.fixed_dictionaries({"kind": st.just("token_copy"), "length": small, "alphabet": small.map(
        lambda a: a + 1), "reverse": st.booleans(), "causal": causal, **splits}),
    st.fixed_dictionaries({"kind": st.just("token_sort"), "length": small,
                           "alphabet": st.just(3), "causal": causal, **splits}),
    st.fixed_dictionaries({"kind": st.just("associative_recall"), "pairs": small,
                           "keys": st.just(3), "values": st.just(2), "causal": causal, **splits}),
    st.fixed_dictionaries({"kind": st.just("modular_addition"), "modulus": st.integers(4, 6),
                           "causal": causal}),
    st.fixed_dictionaries({"kind": st.just("markov_language"), "vocab": st.integers(2, 4),
                           "order": small, "length": st.integers(4, 6), **splits}),
]
block_options = {
    "heads": st.sampled_from([1, 2, 3]), "causal": st.booleans(), "qk_norm": st.booleans(),
    "norm": st.sampled_from(["layer_norm", "rms_norm"]),
    "norm_position": st.sampled_from(["pre", "post", "none"]),
    "residual_scale": st.sampled_from([1.0, 0.5, "deepnorm", "rezero", "skipinit"]),
    "mlp": st.sampled_from(["plain", "gated"]), "mlp_ratio": st.sampled_from([0.5, 2.0]),
    "activation": st.sampled_from(["gelu", "relu", "tanh", "silu"]),
    "dropout": st.sampled_from([0.0, 0.2]),
}
LAYERS = st.one_of(
    st.builds(lambda d, v: {"type": "embedding", "dim": d, **({"vocab": v} if v else {})},
              st.sampled_from([2, 4, 6]), st.sampled_from([None, 4, 5])),
    st.builds(lambda k: {"type": "positional_encoding", "kind": k},
              st.sampled_from(["learned", "sinusoidal", "none"])),
    st.builds(lambda h, c, q: {"type": "self_attention", "heads": h, "causal": c, "qk_norm": q},
              st.sampled_from([1, 2]), st.booleans(), st.booleans()),
    st.just({"type": "rms_norm"}),
    st.builds(lambda h, o: {"type": "gated_mlp", "hidden": h, **({"out": o} if o else {})},
              small, st.sampled_from([None, 4])),
    st.fixed_dictionaries({"type": st.just("transformer_block")}, optional=block_options),
    st.builds(lambda body: {"type": "residual", "body": [body]},
              st.builds(lambda h: {"type": "self_attention", "heads": h}, st.just(1))),
    st.just({"type": "sequence_pool"}),
)
models = st.one_of(
    st.fixed_dictionaries({"family": st.just("transformer"), "depth": small,
                           "width": st.sampled_from([2, 4, 6])},
                          optional={**block_options, "positional": st.sampled_from(
                              ["learned", "sinusoidal", "none"])}),
    st.lists(LAYERS, min_size=1, max_size=4).map(lambda layers: {"layers": layers}),
)


@st.composite
def bodies(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "spec_version": 1, "model": draw(models),
        "init": {"scheme": draw(st.sampled_from(["default", "xavier_uniform", "normal"]))},
        "data": draw(st.sampled_from(TOKEN_DATA).flatmap(lambda kind: kind)),
        "optimizer": {"lr": 0.01, "schedule": {"warmup_steps": draw(st.integers(0, 1))}},
        "training": {"steps": 1, "batch_size": 4, "device": "cpu"},
        "diagnostics": {"preset": "standard", "probe_batch_size": 8,
                        "interpolation_points": 3},
    }


@settings(max_examples=60, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(body=bodies())
def test_attention_designs_train_or_fail_cleanly(body, one_thread):
    try:
        spec = ExperimentSpec.model_validate(body)
    except ValidationError:
        event("refused by validation")
        return
    try:
        analysis = analyze(spec)
    except ShapeError as exc:
        event(f"refused by analyze at {exc.loc[:2]}")
        assert exc.loc and exc.loc[0] == "model" and exc.message
        return
    assert ExperimentSpec.model_validate_json(spec.model_dump_json()) == spec
    event("trained")
    result = run_experiment(spec)
    assert result["summary"]["outcome"] in ("completed", "diverged")
    json.dumps(result, allow_nan=False)
    torch.manual_seed(0)
    model = build_model(spec)
    assert sum(p.numel() for p in model.parameters()) == analysis.parameters
    model.eval()
    with torch.no_grad():
        out = model(make_dataset(spec.data, 0, torch.device("cpu")).x_val[:2])
    assert tuple(out.shape[1:]) == analysis.output_shape
