"""The attention findings' parts: what each rule looks at (from the ``transformer`` section),
its message, and its fixes as spec edits. ``rules.py`` lists the rules, ``remedies.py`` and
``evaluate.py`` draw the fixes and messages from here.

- ``rank_collapse``: at init the tokens leave the blocks nearly parallel (mean pairwise cosine
  after the most collapsed block): attention without skips (Dong et al. 2021).
- ``attention_entropy_collapse``: after training a head attends to about one key (its row
  entropy a small share of the largest possible); QK-norm bounds the logits.
- ``post_ln_without_warmup``: Post-LN blocks, no warm-up, and the init gradient signature
  (last block's gradient / first's, Xiong et al. 2020).
- ``residual_stream_growth``: at init the stream's variance grows by a large factor from the
  first block to the last (Pre-LN's linear growth at depth, or scales above 1), so later blocks'
  branches are swamped (Brock et al. 2021).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from worker.core.spec import ExperimentSpec, Layer, ResidualLayer, TransformerBlockLayer, analyze

Score = tuple[float, dict[str, Any]]
Edit = dict[str, Any]
Candidate = tuple[str, tuple[Edit, ...]]
ATTENTION_TYPES = ("self_attention", "transformer_block")


def _section(result: dict[str, Any], part: str) -> dict[str, Any]:
    return dict((result.get("transformer") or {}).get(part) or {})


def init_rank_collapse(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """Largest mean pairwise token cosine after a block, at step 0."""
    part = _section(result, "rank_collapse")
    probes = part.get("probes") or []
    if not probes or probes[0]["step"] != 0:
        return None
    cosines = [(c, i) for i, c in enumerate(probes[0]["cosine"]) if c is not None]
    if not cosines:
        return None
    value, i = max(cosines)
    return value, {"step": 0, "block": part["blocks"][i], "cosine": value,
                   "input_cosine": probes[0]["input_cosine"],
                   "relative_residual": probes[0]["relative_residual"][i],
                   "blocks": len(part["blocks"])}


def final_attention_entropy(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """Lowest head's row entropy / its largest possible value, at the last probe (after
    training)."""
    probes = _section(result, "attention_entropy").get("probes") or []
    if len(probes) < 2:
        return None
    heads = [(n, layer, h) for layer in probes[-1]["layers"]
             for h, n in enumerate(layer["normalized"]) if n is not None]
    if not heads:
        return None
    value, layer, h = min(heads, key=lambda item: item[0])
    return value, {"step": probes[-1]["step"], "layer": layer["layer"], "head": h,
                   "normalized_entropy": value, "entropy": layer["entropy"][h],
                   "max_entropy": layer["max_entropy"], "logit_std": layer["logit_std"][h]}


def _walk(layers: list[Layer]) -> list[Layer]:
    out: list[Layer] = []
    for layer in layers:
        out.append(layer)
        if isinstance(layer, ResidualLayer):
            out += _walk(layer.body)
    return out


def post_ln_blocks(spec: ExperimentSpec) -> int:
    """Post-LN transformer blocks not scaled by DeepNorm."""
    return sum(1 for layer in _walk(analyze(spec).layers)
               if isinstance(layer, TransformerBlockLayer) and layer.norm_position == "post"
               and layer.residual_scale != "deepnorm")


def post_ln_gradient_ratio(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """log10 of the last block's gradient norm / the first's at step 0, for designs with
    Post-LN blocks (not DeepNorm) trained without warm-up (None otherwise)."""
    if spec.optimizer.schedule.warmup_steps > 0 or not post_ln_blocks(spec):
        return None
    probes = _section(result, "block_gradients").get("probes") or []
    if not probes or probes[0]["step"] != 0 or not probes[0].get("last_to_first"):
        return None
    ratio = probes[0]["last_to_first"]
    return math.log10(ratio), {"step": 0, "last_to_first": ratio,
                               "first_block_grad": probes[0]["grad_norm"][0],
                               "last_block_grad": probes[0]["grad_norm"][-1],
                               "post_ln_blocks": post_ln_blocks(spec), "warmup_steps": 0}


def init_stream_growth(result: dict[str, Any], spec: ExperimentSpec) -> Score | None:
    """The stream's variance after the last block / after the first, at step 0."""
    part = _section(result, "signal_propagation")
    growth = part.get("variance_growth_at_init")
    if growth is None or not part.get("probes"):
        return None
    blocks = part["probes"][0]["blocks"]
    return float(growth), {"step": 0, "variance_growth": growth, "blocks": len(blocks),
                           "first_variance": blocks[0]["output_variance"],
                           "last_variance": blocks[-1]["output_variance"]}


Message = Callable[[float, dict[str, Any]], str]
MESSAGES: dict[str, Message] = {
    "rank_collapse": lambda v, e: f"At initialization the tokens leaving {e['block']} point "
    f"the same way (mean pairwise cosine {e['cosine']:.3f}, from {e['input_cosine']:.2f} at "
    "the input): attention has averaged them into one, so later layers cannot tell positions "
    "apart.",
    "attention_entropy_collapse": lambda v, e: f"After training, head {e['head']} of "
    f"{e['layer']} keeps only {e['normalized_entropy']:.0%} of the largest attention entropy "
    f"(logit std {e['logit_std']:.3g}): it attends to about one key.",
    "post_ln_without_warmup": lambda v, e: f"{e['post_ln_blocks']} Post-LN block(s) without "
    f"warm-up: at initialization the last block's gradient is {e['last_to_first']:.2g} times "
    "the first's, so a learning rate that suits the early blocks is too large near the output.",
    "residual_stream_growth": lambda v, e: f"At initialization the residual stream's variance "
    f"grows {e['variance_growth']:.3g}-fold over {e['blocks']} blocks: later branches add "
    "little to a stream that large.",
}


def _attention_paths(doc: dict[str, Any], types: tuple[str, ...]) -> list[str]:
    """Prefixes of the (top-level) layers of these types; ``model`` for the family."""
    model = doc["model"]
    if "layers" not in model:
        return ["model"] if model.get("family") == "transformer" else []
    return [f"model.layers.{i}" for i, layer in enumerate(model["layers"])
            if layer.get("type") in types]


def _set_all(paths: list[str], field: str, value: Any) -> tuple[Edit, ...]:
    return tuple({"path": f"{p}.{field}", "value": value} for p in paths)


def _skips(doc: dict[str, Any]) -> Candidate | None:
    model = doc["model"]
    if "layers" not in model:
        return None
    edits = tuple({"path": f"model.layers.{i}", "value": {"type": "residual", "body": [layer]}}
                  for i, layer in enumerate(model["layers"])
                  if layer.get("type") == "self_attention")
    return ("skip connections around attention (or transformer blocks)", edits) if edits else None


def _post_blocks(doc: dict[str, Any]) -> list[str]:
    model = doc["model"]
    if "layers" not in model:
        return ["model"] if model.get("norm_position") == "post" else []
    return [p for p in _attention_paths(doc, ("transformer_block",))
            if model["layers"][int(p.rsplit(".", 1)[1])].get("norm_position", "pre") == "post"]


def _warmup(doc: dict[str, Any]) -> Candidate:
    steps = int(doc.get("training", {}).get("steps") or 1000)
    return (f"learning-rate warm-up ({max(1, steps // 5)} steps)",
            ({"path": "optimizer.schedule.warmup_steps", "value": max(1, steps // 5)},))


def candidates(code: str, doc: dict[str, Any]) -> list[Candidate]:
    """(label, edits) of each fix offered for an attention finding (validated by remedies)."""
    blocks = _attention_paths(doc, ("transformer_block",))
    post = _post_blocks(doc)
    pre_ln = ("Pre-LN (norm_position pre)", _set_all(post, "norm_position", "pre"))
    found: list[Candidate | None] = []
    if code == "rank_collapse":
        found = [_skips(doc), pre_ln if post else None]
    elif code == "attention_entropy_collapse":
        found = [("QK-norm", _set_all(_attention_paths(doc, ATTENTION_TYPES), "qk_norm", True))]
    elif code == "post_ln_without_warmup":
        found = [pre_ln, _warmup(doc),
                 ("DeepNorm residual scaling", _set_all(post, "residual_scale", "deepnorm"))]
    elif code == "residual_stream_growth":
        n = max(1, len(blocks) if "layers" in doc["model"] else int(doc["model"]["depth"]))
        scale = round(1 / math.sqrt(2 * n), 4)
        found = [("ReZero (residual_scale rezero)", _set_all(blocks, "residual_scale", "rezero")),
                 (f"branches scaled by 1/sqrt(2N) = {scale:g}",
                  _set_all(blocks, "residual_scale", scale))]
    return [c for c in found if c is not None and c[1]]


CODES = frozenset(MESSAGES)
