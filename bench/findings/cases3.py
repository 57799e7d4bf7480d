"""The third batch: attention designs, so the attention findings are judged on outcomes too.

Token sorting (a bidirectional task that needs attention: each output position depends on every
input), 300 steps of SGD + momentum, the default diagnostics plus sharpness like every case:

- **healthy**: Pre-LN transformers, shallow Post-LN, Post-LN with DeepNorm's scaling, ReZero,
  a gated MLP, and self-attention stacks *with* skips;
- **faulty: post_ln**: deep Post-LN without warm-up (fix: Pre-LN);
- **faulty: rank_collapse**: self-attention stacks without skips (fix: a residual around each
  attention layer).

Labels come from outcomes exactly as for the other batches (``label.py``). Dev seeds 300-349 on
sorting 6 symbols from 6; held-out seeds 350-399 on sorting 7 symbols from 5, other depths.

``post_ln_cases`` is a fourth batch (seeds 400-499), made because the third held one healthy
and one faulty labeled Post-LN design a split: too few to place the Post-LN rule's boundary (a
threshold halfway between them warned on shallow Post-LN runs that trained as well as Pre-LN).
It spans Post-LN depth 2-10 at lr 0.1-0.3 on the same two tasks; the outcomes decide which
side each design is on.
"""

from __future__ import annotations

import copy
from typing import Any

from cases import Case, Edit, Spec, Split, experiment

SORT_DEV: Spec = {"kind": "token_sort", "length": 6, "alphabet": 6, "causal": False,
                  "n_train": 2048, "n_val": 512}
SORT_HELDOUT: Spec = {"kind": "token_sort", "length": 7, "alphabet": 5, "causal": False,
                      "n_train": 2048, "n_val": 512}
TO_PRE_LN: list[Edit] = [{"path": "model.norm_position", "value": "pre"}]
STEPS = 300


def transformer(depth: int, norm: str = "pre", scale: Any = 1.0, **extra: Any) -> Spec:
    return {"family": "transformer", "depth": depth, "width": 32, "heads": 2, "mlp_ratio": 2,
            "norm_position": norm, "residual_scale": scale, "causal": False, **extra}


def attention_layers(n: int, skips: bool) -> list[Spec]:
    attention: Spec = {"type": "self_attention", "heads": 2, "causal": False}
    block = {"type": "residual", "body": [attention]} if skips else attention
    return [{"type": "embedding", "dim": 32}, {"type": "positional_encoding"},
            *[copy.deepcopy(block) for _ in range(n)]]


def case(split: Split, intended: str, label: str, model: Spec, data: Spec, seed: int,
         lr: float, fix: list[Edit] | None = None) -> Case:
    name = f"attn-{intended}-{label}-s{seed}"
    spec = experiment(name, model, copy.deepcopy(data), lr=lr, steps=STEPS, seed=seed,
                      batch_size=32)
    return Case(name, split, intended, spec, fix)


def stack(split: Split, n: int, data: Spec, seed: int, lr: float = 0.1) -> Case:
    """Self-attention without skips; its fix puts a residual around each attention layer."""
    fix = [{"path": "model.layers", "value": attention_layers(n, skips=True)}]
    return case(split, "rank_collapse", f"pure{n}", {"layers": attention_layers(n, False)},
                data, seed, lr, fix)


def attention_cases() -> list[Case]:
    d, h = SORT_DEV, SORT_HELDOUT
    return [
        # dev
        case("dev", "healthy", "pre-d2", transformer(2), d, 300, 0.1),
        case("dev", "healthy", "pre-d4-lr0.3", transformer(4), d, 301, 0.3),
        case("dev", "healthy", "skips6", {"layers": attention_layers(6, True)}, d, 302, 0.1),
        case("dev", "healthy", "post-deepnorm-d8", transformer(8, "post", "deepnorm"), d, 303,
             0.3),
        case("dev", "healthy", "post-d2", transformer(2, "post"), d, 304, 0.1),
        case("dev", "healthy", "rezero-d6", transformer(6, "pre", "rezero"), d, 305, 0.1),
        case("dev", "healthy", "pre-gated-d3", transformer(3, mlp="gated"), d, 306, 0.1),
        case("dev", "post_ln", "post-d12-lr0.3", transformer(12, "post"), d, 307, 0.3,
             TO_PRE_LN),
        case("dev", "post_ln", "post-d8-lr0.3", transformer(8, "post"), d, 308, 0.3, TO_PRE_LN),
        case("dev", "post_ln", "post-d12-lr0.6", transformer(12, "post"), d, 309, 0.6,
             TO_PRE_LN),
        stack("dev", 6, d, 310),
        stack("dev", 4, d, 311),
        stack("dev", 8, d, 312),
        # held-out: another task size, other depths and seeds
        case("heldout", "healthy", "pre-d3", transformer(3), h, 350, 0.1),
        case("heldout", "healthy", "skips5", {"layers": attention_layers(5, True)}, h, 351, 0.1),
        case("heldout", "healthy", "post-deepnorm-d10", transformer(10, "post", "deepnorm"), h,
             352, 0.3),
        case("heldout", "healthy", "post-d3", transformer(3, "post"), h, 353, 0.1),
        case("heldout", "post_ln", "post-d10-lr0.3", transformer(10, "post"), h, 354, 0.3,
             TO_PRE_LN),
        case("heldout", "post_ln", "post-d12-lr0.4", transformer(12, "post"), h, 355, 0.4,
             TO_PRE_LN),
        stack("heldout", 5, h, 356),
        stack("heldout", 7, h, 357),
    ]


def post_ln_cases() -> list[Case]:
    """The fourth batch: Post-LN transformers over depth and learning rate (module docstring)."""
    d, h = SORT_DEV, SORT_HELDOUT

    def post(split: Split, intended: str, depth: int, lr: float, data: Spec, seed: int) -> Case:
        fix = TO_PRE_LN if intended == "post_ln" else None
        return case(split, intended, f"post-d{depth}-lr{lr:g}", transformer(depth, "post"),
                    data, seed, lr, fix)

    return [
        post("dev", "healthy", 2, 0.2, d, 400),
        post("dev", "healthy", 3, 0.2, d, 401),
        post("dev", "healthy", 4, 0.1, d, 402),
        post("dev", "healthy", 5, 0.1, d, 403),
        post("dev", "post_ln", 6, 0.3, d, 404),
        post("dev", "post_ln", 8, 0.2, d, 405),
        post("dev", "post_ln", 10, 0.3, d, 406),
        post("heldout", "healthy", 2, 0.1, h, 450),
        post("heldout", "healthy", 4, 0.2, h, 451),
        post("heldout", "post_ln", 6, 0.3, h, 452),
        post("heldout", "post_ln", 9, 0.3, h, 453),
    ]
