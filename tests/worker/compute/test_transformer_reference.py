"""Attention layers and the transformer diagnostics against hand-written references, formulas
and theory, on tiny seeded problems (METRICS.md section 3b)."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F

from worker.compute.attention import SelfAttention, sinusoidal_table
from worker.compute.diagnostics.attention_entropy import head_entropy, logit_scale
from worker.compute.diagnostics.attention_trace import attention_blocks
from worker.compute.diagnostics.block_gradients import BlockGradients
from worker.compute.diagnostics.capture import capture
from worker.compute.diagnostics.probes import ProbeSet
from worker.compute.diagnostics.rank_collapse import relative_residual, token_cosine
from worker.compute.diagnostics.registry import build_diagnostics
from worker.compute.diagnostics.signal_propagation import channel_stats
from worker.compute.evaluation import loss_function
from worker.compute.model import Net, build_model
from worker.compute.transformer import TransformerBlock, deepnorm_constants
from worker.core.spec import ExperimentSpec, data_shape

MARKOV: dict[str, Any] = {"kind": "markov_language", "vocab": 8, "order": 1, "length": 12,
                          "n_train": 64, "n_val": 16}


def spec_of(model: dict[str, Any], data: dict[str, Any] | None = None, **diagnostics: Any):
    return ExperimentSpec.model_validate({
        "spec_version": 1, "model": model, "data": data or MARKOV,
        "training": {"steps": 1, "batch_size": 16, "device": "cpu"},
        "diagnostics": {"preset": "standard", "probe_batch_size": 64, **diagnostics},
    })


def tokens(batch: int, steps: int, vocab: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab, (batch, steps), generator=g)
    return F.one_hot(ids, vocab).double()


def trace_records(model: Net, spec: ExperimentSpec, x: torch.Tensor) -> dict[str, Any]:
    """The attention diagnostics' step-0 records, through the real probe path."""
    diagnostics = build_diagnostics(spec, model)
    y = torch.zeros(x.shape[:2], dtype=torch.long)
    probes = ProbeSet(diagnostics, [0], x, y, loss_function(data_shape(spec.data)), x, 1, 0.1,
                      0.9)
    probes.run(model, 0)
    return {d.name: d.records[0] for d in diagnostics if d.records}


# --- layers --------------------------------------------------------------------------------


@pytest.mark.parametrize("causal", [False, True])
def test_attention_matches_a_hand_written_softmax_qkt_v(causal, one_thread):
    """Per head softmax(Q K^T / sqrt(d_head)) V, written with loops over heads and queries."""
    torch.manual_seed(0)
    d, heads, steps = 8, 2, 5
    layer = SelfAttention(d, heads, steps, causal, qk_norm=False).double()
    x = torch.randn(3, steps, d, dtype=torch.float64)
    wq, wk, wv = layer.qkv.weight.detach().chunk(3, dim=0)
    bq, bk, bv = layer.qkv.bias.detach().chunk(3)
    dh = d // heads
    expected = torch.zeros(3, steps, d, dtype=torch.float64)
    for b in range(3):
        q, k, v = x[b] @ wq.T + bq, x[b] @ wk.T + bk, x[b] @ wv.T + bv
        for h in range(heads):
            cols = slice(h * dh, (h + 1) * dh)
            for t in range(steps):
                seen = t + 1 if causal else steps
                scores = [float(q[t, cols] @ k[j, cols]) / math.sqrt(dh) for j in range(seen)]
                top = max(scores)
                weights = [math.exp(s - top) for s in scores]
                total = sum(weights)
                expected[b, t, cols] = sum(w / total * v[j, cols] for j, w in enumerate(weights))
    expected = expected @ layer.out.weight.detach().T + layer.out.bias.detach()
    assert torch.allclose(layer(x).detach(), expected, atol=1e-12)


def test_sinusoidal_encoding_is_the_formula():
    steps, d = 7, 6
    table = sinusoidal_table(steps, d)
    for p in range(steps):
        for i in range(d // 2):
            angle = p / 10000 ** (2 * i / d)
            assert float(table[p, 2 * i]) == pytest.approx(math.sin(angle), abs=1e-6)
            assert float(table[p, 2 * i + 1]) == pytest.approx(math.cos(angle), abs=1e-6)
    assert sinusoidal_table(3, 5).shape == (3, 5)  # odd width: the last column is a sine


@pytest.mark.parametrize("model", [
    {"family": "transformer", "depth": 3, "width": 8, "heads": 2},
    {"family": "transformer", "depth": 2, "width": 8, "heads": 2, "norm_position": "post",
     "mlp": "gated", "qk_norm": True},
    {"layers": [{"type": "embedding", "dim": 8}, {"type": "self_attention", "heads": 2},
                {"type": "residual", "body": [{"type": "self_attention", "heads": 4}]}]},
])
def test_causal_attention_leaks_no_future_token(model, one_thread):
    """d out_t / d x_s = 0 exactly for every s > t; a bidirectional model's is not."""
    torch.manual_seed(0)
    net = build_model(spec_of(model)).double()
    x = tokens(2, 12, 8).requires_grad_(True)
    jac = torch.autograd.functional.jacobian(lambda inp: net(inp).sum(dim=(0, 2)), x)
    influence = jac.abs().sum(dim=(1, 3))  # (output step t, input step s)
    future = torch.ones(12, 12, dtype=torch.bool).triu(1)
    assert float(influence[future].max()) == 0.0
    assert bool((influence[~future] > 0).all())
    if "family" in model:
        copy = {"kind": "token_copy", "causal": False, "length": 5, "alphabet": 6,
                "n_train": 64, "n_val": 16}
        bidirectional = build_model(spec_of({**model, "causal": False}, copy)).double()
        x2 = tokens(2, 11, 8).requires_grad_(True)
        jac2 = torch.autograd.functional.jacobian(lambda i: bidirectional(i).sum(dim=(0, 2)), x2)
        assert float(jac2.abs().sum(dim=(1, 3))[future[:11, :11]].min()) > 0


def test_deepnorm_constants_and_init_follow_the_paper():
    """DeepNet (Wang et al. 2022), encoder- or decoder-only stack of N layers: alpha =
    (2N)^(1/4) on the skip, beta = (8N)^(-1/4) the Xavier-normal gain of V, the output
    projection and the MLP; Q and K keep gain 1."""
    assert deepnorm_constants(6) == pytest.approx((12 ** 0.25, 48 ** -0.25))
    assert deepnorm_constants(6) == pytest.approx((1.8612, 0.3799), abs=1e-4)
    torch.manual_seed(0)
    d, n = 64, 6
    net = build_model(spec_of({"family": "transformer", "depth": n, "width": d,
                               "norm_position": "post", "residual_scale": "deepnorm"}))
    alpha, beta = deepnorm_constants(n)
    blocks = [m for m in net.layers if isinstance(m, TransformerBlock)]
    assert len(blocks) == n and all(b.skip_gain == pytest.approx(alpha) for b in blocks)
    xavier = math.sqrt(2 / (d + d))
    q, k, v = blocks[0].attention.qkv.weight.detach().chunk(3, dim=0)
    assert float(q.std()) == pytest.approx(xavier, rel=0.03)
    assert float(k.std()) == pytest.approx(xavier, rel=0.03)
    assert float(v.std()) == pytest.approx(beta * xavier, rel=0.03)
    out = blocks[0].attention.out.weight.detach()
    assert float(out.std()) == pytest.approx(beta * xavier, rel=0.03)
    first = blocks[0].mlp[0].weight.detach()  # d -> 4d
    assert float(first.std()) == pytest.approx(beta * math.sqrt(2 / (d + 4 * d)), rel=0.03)


def test_rezero_blocks_start_as_the_identity(one_thread):
    torch.manual_seed(0)
    net = build_model(spec_of({"family": "transformer", "depth": 2, "width": 8,
                               "norm_position": "none", "residual_scale": "rezero",
                               "positional": "none"})).double()
    x = tokens(2, 12, 8)
    h = net.layers[0](x)
    assert torch.equal(net.layers[2](net.layers[1](h)), h)


# --- the metrics' own arithmetic -----------------------------------------------------------


def test_token_cosine_and_residual_against_brute_force():
    torch.manual_seed(0)
    h = torch.randn(3, 5, 4, dtype=torch.float64)
    pairs = [(i, j) for i in range(5) for j in range(5) if i != j]
    for b in range(3):
        brute = sum(float(F.cosine_similarity(h[b, i], h[b, j], dim=0)) for i, j in pairs)
        assert float(token_cosine(h)[b]) == pytest.approx(brute / len(pairs), abs=1e-12)
        mean = h[b].mean(dim=0)
        expected = math.sqrt(sum(float((h[b, t] - mean).pow(2).sum()) for t in range(5)))
        assert float(relative_residual(h)[b]) == pytest.approx(
            expected / float(h[b].norm()), abs=1e-12)
    same = torch.randn(1, 1, 4).expand(2, 6, 4)
    assert token_cosine(same).tolist() == pytest.approx([1.0, 1.0])
    assert relative_residual(same).tolist() == pytest.approx([0.0, 0.0], abs=1e-12)
    assert token_cosine(torch.eye(4)[None]).tolist() == pytest.approx([0.0])


def test_entropy_and_logit_scale_against_closed_forms():
    steps = 6
    causal = torch.ones(steps, steps, dtype=torch.bool).triu(1)
    logits = torch.zeros(2, 3, steps, steps)
    uniform = torch.softmax(logits.masked_fill(causal, float("-inf")), dim=-1)
    entropy, most = head_entropy(uniform, causal)
    expected = sum(math.log(t + 1) for t in range(steps)) / steps  # row t sees t + 1 keys
    assert most == pytest.approx(expected) and entropy == pytest.approx([expected] * 3)
    entropy, most = head_entropy(torch.softmax(logits, dim=-1), None)
    assert most == pytest.approx(math.log(steps)) and entropy == pytest.approx([math.log(6)] * 3)
    one_hot = F.one_hot(torch.zeros(2, 3, steps, dtype=torch.long), steps).float()
    assert head_entropy(one_hot, None)[0] == pytest.approx([0.0] * 3, abs=1e-12)
    torch.manual_seed(0)
    z = torch.randn(2, 3, steps, steps, dtype=torch.float64)
    for h, std in enumerate(logit_scale(z.masked_fill(causal, float("-inf")), causal)):
        seen = z[:, h][~causal.expand(2, steps, steps)]
        assert std == pytest.approx(float(seen.std(unbiased=False)), rel=1e-12)


def test_channel_stats_are_per_unit_variance_and_mean_square():
    torch.manual_seed(0)
    h = torch.randn(4, 5, 3, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0]) + 1.0
    flat = h.reshape(20, 3)
    var = sum(float(flat[:, c].var(unbiased=False)) for c in range(3)) / 3
    mean_sq = sum(float(flat[:, c].mean()) ** 2 for c in range(3)) / 3
    assert channel_stats(h) == pytest.approx((var, mean_sq), rel=1e-12)


# --- theory, through the real probe path ---------------------------------------------------


def _attention_stack(skips: bool, depth: int) -> dict[str, Any]:
    attn: dict[str, Any] = {"type": "self_attention", "heads": 4, "causal": False}
    block = {"type": "residual", "body": [attn]} if skips else attn
    return {"layers": [{"type": "embedding", "dim": 32}, *([block] * depth)]}


def test_pure_attention_collapses_to_rank_one_and_skips_prevent_it(one_thread):
    """Dong et al. (2021): without skips, self-attention converges to a rank-one sequence
    doubly exponentially with depth (their bound: res_{l+1} <~ res_l^3), so the token cosine
    -> 1 and the relative residual falls faster than any geometric rate until it hits
    rounding; with skips the rank stays. Bidirectional copy task, random tokens, 6 layers."""
    data = {"kind": "token_copy", "length": 10, "alphabet": 12, "causal": False,
            "n_train": 64, "n_val": 16}
    x = tokens(64, 21, 14)
    out = {}
    for skips in (False, True):
        torch.manual_seed(0)
        spec = spec_of(_attention_stack(skips, 6), data)
        out[skips] = trace_records(build_model(spec).double(), spec, x)["rank_collapse"]
    pure, skipped = out[False], out[True]
    assert pure["input_cosine"] < 0.1 and skipped["input_cosine"] < 0.1
    assert pure["cosine"][-1] > 0.999999
    r = pure["relative_residual"]  # measured 0.26, 3.5e-5, 2.8e-16, then rounding
    assert math.log(r[1]) / math.log(r[0]) > 3  # doubly exponential: the exponent grows
    assert r[2] < 1e-12
    assert max(skipped["cosine"]) < 0.3  # measured 0.08 rising to 0.19
    assert min(skipped["relative_residual"]) > 0.8


def _least_squares_r2(values: list[float]) -> tuple[float, float]:
    n = len(values)
    mean_l, mean_v = (n - 1) / 2, sum(values) / n
    slope = sum((i - mean_l) * (v - mean_v) for i, v in enumerate(values)) / sum(
        (i - mean_l) ** 2 for i in range(n))
    residual = sum((v - mean_v - slope * (i - mean_l)) ** 2 for i, v in enumerate(values))
    return slope, 1 - residual / sum((v - mean_v) ** 2 for v in values)


def test_pre_ln_stream_variance_grows_linearly_with_depth(one_thread):
    """Pre-LN adds to an unnormalized sum a branch whose input is normalized, so at init the
    stream's variance grows about linearly with depth (least-squares fit, R^2 > 0.98; measured
    1.01 to 2.15 over 16 blocks). Post-LN's output is layer-normed per token: its per-unit
    variance plus squared mean (the second moment) is 1 at every depth (minus the norm's
    epsilon), while its variance alone falls as the tokens align."""
    x = tokens(128, 12, 8)
    records = {}
    for position in ("pre", "post"):
        torch.manual_seed(0)
        spec = spec_of({"family": "transformer", "depth": 16, "width": 32, "heads": 4,
                        "norm_position": position, "positional": "none"})
        records[position] = trace_records(build_model(spec).double(), spec, x)
    pre = [b["output_variance"] for b in records["pre"]["signal_propagation"]["blocks"]]
    slope, r2 = _least_squares_r2(pre)
    assert slope > 0.04 and r2 > 0.98, (pre, r2)
    assert pre[-1] > 1.8 * pre[0]
    post = records["post"]["signal_propagation"]["blocks"]
    second_moment = [b["output_variance"] + b["output_mean_sq"] for b in post]
    assert second_moment == pytest.approx([1.0] * 16, abs=1e-3)


def test_post_ln_gradients_grow_toward_the_output_at_init(one_thread):
    """Xiong et al. (2020): at init Post-LN's parameter gradients are largest near the output
    and fall toward the input, Pre-LN's stay about level (measured last/first 2.4 and 1.2 at
    depth 16)."""
    x = tokens(128, 12, 8)
    ratio = {}
    for position in ("pre", "post"):
        torch.manual_seed(0)
        spec = spec_of({"family": "transformer", "depth": 16, "width": 32, "heads": 4,
                        "norm_position": position, "positional": "none"})
        ratio[position] = trace_records(build_model(spec).double(), spec,
                                        x)["block_gradients"]["last_to_first"]
    assert ratio["post"] > 2.0 and ratio["pre"] < 1.5 and ratio["post"] > 1.5 * ratio["pre"]


def test_block_gradient_norms_against_autograd(one_thread):
    torch.manual_seed(0)
    spec = spec_of({"family": "transformer", "depth": 3, "width": 8, "heads": 2})
    net = build_model(spec).double()
    x = tokens(16, 12, 8)
    y = torch.randint(0, 8, (16, 12))
    loss_fn = loss_function(data_shape(spec.data))
    diagnostic = next(d for d in build_diagnostics(spec, net) if isinstance(d, BlockGradients))
    ctx = ProbeSet([diagnostic], [0], x, y, loss_fn, x, 1, 0.1, 0.9).context(net, 0)
    ctx.capture = capture(net, loss_fn, x, y, 0)
    diagnostic.at_probe(ctx)
    blocks = [m for _, m in attention_blocks(net)]
    grads = torch.autograd.grad(loss_fn(net(x), y), [p for b in blocks for p in b.parameters()])
    sizes = [len(list(b.parameters())) for b in blocks]
    expected, start = [], 0
    for size in sizes:
        expected.append(math.sqrt(sum(float(g.pow(2).sum()) for g in grads[start:start + size])))
        start += size
    assert diagnostic.records[0]["grad_norm"] == pytest.approx(expected, rel=1e-10)
