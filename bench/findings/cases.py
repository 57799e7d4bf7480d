"""The findings benchmark's designs: each with the pathology it is meant to have and a fix.

A case is a complete experiment spec, the pathology class it was built to show (or
``healthy``), and for faulty ones a one-change fix as spec edits. Whether a case really is
faulty is decided later from training outcomes (``label.py``); the intent here only says which
twin to run. The generator is deterministic: the same code gives the same cases.

Held-out designs repeat a dev design's *idea* on another depth, width, dataset or seed, never
the same spec, so a threshold tuned on dev is tested on designs it has not seen.

    python bench/findings/cases.py                     # counts per intended class and split
    python bench/findings/cases.py --json cases.json   # every case, fixed twins included
    python bench/findings/cases.py --validate http://127.0.0.1:8311   # dry-run every spec
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any, Literal

Split = Literal["dev", "heldout", "heldout2"]
SPLITS: tuple[Split, ...] = ("dev", "heldout", "heldout2")
Spec = dict[str, Any]
Edit = dict[str, Any]

CLASSES = (
    "vanishing_gradients",
    "exploding_gradients",
    "saturated_units",
    "short_memory",
    "jagged_activation",
    "lr_too_high",
    "lr_too_low_or_frozen",
    "post_ln",  # the third batch (cases3.py): attention designs
    "rank_collapse",
)
HE_GAIN = math.sqrt(2.0)
# The default diagnostics plus sharpness: without it lr_above_stability_threshold cannot fire.
DIAGNOSTICS: Spec = {"preset": "standard", "groups": {"sharpness": True}}

DATA: dict[str, Spec] = {
    "spirals": {"kind": "spirals", "arms": 2, "turns": 1.5, "noise": 0.05,
                "n_train": 2048, "n_val": 512},
    "moons": {"kind": "moons", "noise": 0.1, "n_train": 2048, "n_val": 512},
    "digits": {"kind": "digits", "layout": "flat"},
    "digits_image": {"kind": "digits", "layout": "image"},
    "teacher": {"kind": "teacher", "task": "regression", "input_dim": 16, "output_dim": 1,
                "n_train": 2048, "n_val": 512},
}
# Steps per dataset: enough for a healthy design to get well under the baseline loss.
STEPS = {"spirals": 1000, "moons": 600, "digits": 500, "digits_image": 400, "teacher": 800}


@dataclass(frozen=True)
class Case:
    """One benchmark design. ``fix`` is a list of ``{"path", "value"}`` edits (one idea)."""

    name: str
    split: Split
    intended: str
    spec: Spec
    fix: list[Edit] | None = None


def apply_edits(spec: Spec, edits: list[Edit]) -> Spec:
    """A deep copy of ``spec`` with each dotted ``path`` set to ``value`` (digits index lists)."""
    out = copy.deepcopy(spec)
    for edit in edits:
        *parents, leaf = edit["path"].split(".")
        node: Any = out
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node.setdefault(key, {})
        if isinstance(node, list):
            node[int(leaf)] = edit["value"]
        else:
            node[leaf] = edit["value"]
    return out


# --- spec builders -------------------------------------------------------------------------


def experiment(
    name: str,
    model: Spec,
    data: str | Spec,
    *,
    init: Spec | None = None,
    lr: float = 0.02,
    momentum: float = 0.9,
    steps: int | None = None,
    seed: int = 0,
    batch_size: int = 64,
    **optimizer: Any,
) -> Spec:
    """A complete spec; ``data`` is a key of DATA or a data spec."""
    data_spec = copy.deepcopy(DATA[data]) if isinstance(data, str) else data
    if steps is None:
        steps = STEPS[data] if isinstance(data, str) else 1500
    return {
        "spec_version": 1,
        "name": name,
        "model": model,
        "init": init or {"scheme": "default"},
        "data": data_spec,
        "optimizer": {"lr": lr, "momentum": momentum, **optimizer},
        "training": {"steps": steps, "batch_size": batch_size, "seed": seed},
        "diagnostics": copy.deepcopy(DIAGNOSTICS),
    }


def family(kind: str, depth: int, width: int, activation: str = "relu", **extra: Any) -> Spec:
    model: Spec = {"family": kind, "depth": depth, "width": width}
    if kind not in ("rnn", "gru", "lstm"):
        model["activation"] = activation
    return {**model, **extra}


def normal(gain: float, bias_std: float = 0.0) -> Spec:
    """N(0, gain^2 / fan_in), the mean-field convention (gain sqrt 2 is He for relu)."""
    init: Spec = {"scheme": "normal", "gain": gain}
    if bias_std:
        init["bias_std"] = bias_std
    return init


HE: Spec = {"scheme": "kaiming_normal"}
RELU_HE: list[Edit] = [
    {"path": "model.activation", "value": "relu"},
    {"path": "init.scheme", "value": "kaiming_normal"},
    {"path": "init.gain", "value": None},
]
TO_HE: list[Edit] = [
    {"path": "init.scheme", "value": "kaiming_normal"},
    {"path": "init.gain", "value": None},
]
TO_LSTM: list[Edit] = [
    {"path": "model.family", "value": "lstm"},
    {"path": "init.lstm_forget_bias", "value": 1.0},
]


def sequence(kind: str, length: int, **extra: Any) -> Spec:
    base: Spec = {"kind": kind, "length": length, "n_train": 4096, "n_val": 512}
    return {**base, **extra}


def tag(*parts: object) -> str:
    return "-".join(str(p) for p in parts if p != "")


# A variant is (split, depth, width, dataset, seed): one point of a design idea.
Variant = tuple[Split, int, int, str, int]


def mlp_cases(
    intended: str,
    label: str,
    variants: list[Variant],
    model_extra: Spec,
    init: Spec,
    fix: list[Edit] | None = None,
    activation: str = "relu",
    kind: str = "mlp",
    **opt: Any,
) -> list[Case]:
    """One design idea (an mlp/resmlp/cnn family shorthand) at several variants."""
    cases = []
    for split, depth, width, data, seed in variants:
        name = tag(intended, label, data, f"d{depth}", f"w{width}", f"s{seed}")
        model = family(kind, depth, width, activation, **model_extra)
        spec = experiment(name, model, data, init=copy.deepcopy(init), seed=seed, **opt)
        cases.append(Case(name, split, intended, spec, fix))
    return cases


def layered(
    intended: str,
    label: str,
    split: Split,
    layers: list[Spec],
    data: str,
    seed: int,
    init: Spec,
    fix: list[Edit] | None = None,
    **opt: Any,
) -> Case:
    """A design given as an explicit layer list."""
    name = tag(intended, label, data, f"s{seed}")
    spec = experiment(name, {"layers": layers}, data, init=init, seed=seed, **opt)
    return Case(name, split, intended, spec, fix)


def recurrent(
    intended: str,
    label: str,
    split: Split,
    kind: str,
    width: int,
    data: Spec,
    seed: int,
    init: Spec | None = None,
    fix: list[Edit] | None = None,
    *,
    depth: int = 1,
    lr: float = 0.1,
    clip: float | None = 1.0,
    steps: int = 1500,
    **extra: Any,
) -> Case:
    """An rnn/gru/lstm on a sequence task; gradient clipping at 1, as is usual for RNNs
    (``clip=None``: none, and the name says ``noclip``)."""
    what = f"{data['kind']}{data['length']}"
    clip_tag = "noclip" if clip is None else ""
    name = tag(intended, label, what, clip_tag, f"d{depth}", f"w{width}", f"s{seed}")
    model = family(kind, depth, width, **extra)
    opt: dict[str, Any] = {} if clip is None else {"clip_grad_norm": clip}
    spec = experiment(name, model, data, init=init, seed=seed, lr=lr, steps=steps, **opt)
    return Case(name, split, intended, spec, fix)


# --- healthy designs -----------------------------------------------------------------------


def healthy() -> list[Case]:
    """Designs that should train, including hard ones a careless rule would flag. Long: a
    table, one entry per design."""
    h = "healthy"
    c: list[Case] = []
    c += mlp_cases(h, "relu-he", [
        ("dev", 4, 32, "spirals", 0), ("dev", 8, 32, "spirals", 1), ("dev", 3, 64, "digits", 0),
        ("dev", 6, 48, "moons", 2), ("heldout", 3, 64, "teacher", 3),
        ("dev", 6, 64, "spirals", 4)], {}, HE)
    c += mlp_cases(h, "gelu-he", [("dev", 6, 32, "spirals", 0), ("heldout", 4, 48, "digits", 5)],
                   {}, HE, activation="gelu")
    c += mlp_cases(h, "elu-he", [("dev", 4, 32, "moons", 1)], {}, HE, activation="elu")
    c += mlp_cases(h, "silu-he", [("dev", 4, 32, "spirals", 2)], {}, HE, activation="silu")
    c += mlp_cases(h, "leaky-relu-he", [("heldout", 5, 48, "spirals", 3)], {}, HE,
                   activation="leaky_relu")
    # SELU at N(0, 1/fan_in) is self-normalizing: deep but healthy.
    c += mlp_cases(h, "selu-lecun", [("dev", 12, 32, "spirals", 0),
                                     ("heldout", 16, 32, "moons", 1),
                                     ("heldout", 4, 64, "teacher", 2)],
                   {}, normal(1.0), activation="selu")
    # Saturating but shallow, or deep at the critical gain: trains.
    c += mlp_cases(h, "tanh-g1", [("dev", 3, 32, "spirals", 0), ("dev", 12, 32, "spirals", 1),
                                  ("dev", 4, 48, "moons", 2), ("heldout", 10, 32, "digits", 3)],
                   {}, normal(1.0), activation="tanh")
    c += mlp_cases(h, "tanh-xavier", [("dev", 4, 32, "moons", 3), ("heldout", 3, 48, "spirals", 5)],
                   {}, {"scheme": "xavier_normal"}, activation="tanh")
    c += mlp_cases(h, "relu-orthogonal", [("dev", 8, 32, "spirals", 2),
                                          ("heldout", 6, 48, "digits", 1)],
                   {}, {"scheme": "orthogonal", "gain": HE_GAIN})
    # Deep, made trainable by skips and/or normalization.
    c += mlp_cases(h, "relu-residual", [("dev", 16, 32, "spirals", 0),
                                        ("dev", 12, 32, "moons", 1),
                                        ("heldout", 20, 32, "digits", 2)],
                   {"residual": True}, normal(0.5))
    c += mlp_cases(h, "relu-batchnorm", [("dev", 12, 32, "spirals", 0),
                                         ("dev", 16, 32, "moons", 1),
                                         ("heldout", 10, 48, "digits", 2)],
                   {"normalization": "batch"}, normal(1.0))
    c += mlp_cases(h, "tanh-layernorm", [("dev", 8, 32, "spirals", 1),
                                         ("heldout", 10, 32, "moons", 3)],
                   {"normalization": "layer"}, normal(1.0), activation="tanh")
    c += mlp_cases(h, "resmlp-gelu-layernorm", [("dev", 8, 32, "spirals", 0),
                                                ("heldout", 12, 32, "teacher", 1)],
                   {"normalization": "layer"}, HE, activation="gelu", kind="resmlp")
    c += mlp_cases(h, "resmlp-relu-batchnorm", [("dev", 6, 48, "digits", 2),
                                                ("heldout", 8, 32, "spirals", 3)],
                   {"normalization": "batch"}, HE, kind="resmlp")
    c += mlp_cases(h, "relu-dropout", [("dev", 4, 64, "spirals", 0),
                                       ("heldout", 3, 64, "digits", 1)],
                   {"dropout": 0.1}, HE)
    # Optimizer settings that look alarming but are stable.
    c += mlp_cases(h, "momentum099-lr002", [("dev", 4, 32, "spirals", 0)], {}, HE,
                   lr=0.002, momentum=0.99, steps=1500)
    c += mlp_cases(h, "momentum099-lr001", [("heldout", 6, 48, "moons", 1)], {}, HE,
                   lr=0.001, momentum=0.99)
    c += mlp_cases(h, "high-stable-lr02", [("dev", 3, 32, "moons", 0),
                                           ("heldout", 2, 48, "moons", 4)], {}, HE, lr=0.2)
    c += mlp_cases(h, "batchnorm-lr02", [("dev", 8, 32, "spirals", 2),
                                         ("heldout", 6, 48, "digits", 3)],
                   {"normalization": "batch"}, HE, lr=0.2)
    c += mlp_cases(h, "no-momentum-lr02", [("dev", 4, 32, "spirals", 3),
                                           ("heldout", 3, 48, "teacher", 4)], {}, HE,
                   lr=0.2, momentum=0.0)
    c += mlp_cases(h, "nesterov-cosine-warmup", [("dev", 6, 32, "spirals", 4),
                                                 ("heldout", 5, 48, "moons", 5)], {}, HE,
                   lr=0.05, nesterov=True, schedule={"kind": "cosine", "warmup_steps": 100})
    # Oscillating activations at low frequency are smooth enough.
    c += mlp_cases(h, "sin-f1", [("dev", 4, 32, "spirals", 0), ("heldout", 3, 48, "moons", 1)],
                   {"frequency": 1.0}, normal(1.0), activation="sin")
    # CNNs on 8x8 digits.
    c += mlp_cases(h, "cnn-relu-he", [("dev", 2, 8, "digits_image", 0),
                                      ("heldout", 3, 12, "digits_image", 1)],
                   {}, HE, kind="cnn", batch_size=32)
    c += mlp_cases(h, "cnn-relu-batchnorm", [("dev", 4, 8, "digits_image", 2)],
                   {"normalization": "batch"}, HE, kind="cnn", batch_size=32)
    c += mlp_cases(h, "cnn-relu-residual", [("heldout", 4, 8, "digits_image", 3)],
                   {"residual": True}, normal(0.5), kind="cnn", batch_size=32)
    # Explicit layer lists: maxout, pooling, residual blocks, norms.
    maxout = {"type": "maxout", "out": 32, "pieces": 2}
    c.append(layered(h, "maxout-6x32", "dev", [maxout] * 6, "spirals", 0, normal(1.0)))
    c.append(layered(h, "maxout-4x48-p3", "dev",
                     [{"type": "maxout", "out": 48, "pieces": 3}] * 4, "moons", 1, normal(1.0)))
    c.append(layered(h, "maxout-5x32", "heldout", [maxout] * 5, "digits", 2, normal(1.0)))
    conv_bn = [
        {"type": "conv2d", "out_channels": 8, "padding": 1}, {"type": "batch_norm"},
        {"type": "activation", "name": "relu"}, {"type": "max_pool"},
        {"type": "conv2d", "out_channels": 16, "padding": 1},
        {"type": "activation", "name": "relu"}, {"type": "avg_pool"}, {"type": "flatten"},
        {"type": "dropout", "p": 0.1},
    ]
    c.append(layered(h, "conv-bn-pool", "dev", conv_bn, "digits_image", 0, HE, batch_size=32))
    conv_ln = [
        {"type": "conv2d", "out_channels": 12, "padding": 1}, {"type": "layer_norm"},
        {"type": "activation", "name": "gelu"}, {"type": "max_pool"},
        {"type": "residual", "body": [
            {"type": "conv2d", "out_channels": 12, "padding": 1},
            {"type": "activation", "name": "gelu"}]},
        {"type": "flatten"},
    ]
    c.append(layered(h, "conv-ln-residual", "heldout", conv_ln, "digits_image", 1, HE,
                     batch_size=32))
    block = {"type": "residual", "body": [
        {"type": "layer_norm"}, {"type": "linear", "out": 32},
        {"type": "activation", "name": "relu"}]}
    c.append(layered(h, "pre-ln-residual-x10", "dev",
                     [{"type": "linear", "out": 32}, *[block] * 10], "spirals", 3, HE))
    c.append(layered(h, "pre-ln-residual-x14", "heldout",
                     [{"type": "linear", "out": 32}, *[block] * 14], "teacher", 4, HE))
    # Recurrent nets on tasks within their memory.
    fb1 = {"scheme": "default", "lstm_forget_bias": 1.0}
    c.append(recurrent(h, "lstm-fb1", "dev", "lstm", 32, sequence("adding", 20), 0, fb1))
    c.append(recurrent(h, "lstm-fb1", "heldout", "lstm", 32, sequence("adding", 25), 1, fb1))
    c.append(recurrent(h, "gru", "dev", "gru", 32, sequence("adding", 30), 2, lr=0.3))
    c.append(recurrent(h, "lstm-fb1", "dev", "lstm", 64,
                       sequence("copy", 5, symbols=3, alphabet=8), 0, fb1, lr=0.3))
    c.append(recurrent(h, "lstm-fb1", "dev", "lstm", 48,
                       sequence("copy", 4, symbols=3, alphabet=6), 1, fb1, lr=0.3))
    c.append(recurrent(h, "rnn", "dev", "rnn", 64, sequence("copy", 5, symbols=3, alphabet=8), 1))
    c.append(recurrent(h, "rnn", "heldout", "rnn", 48,
                       sequence("copy", 3, symbols=3, alphabet=6), 2))
    c.append(recurrent(h, "lstm-fb1-2layer", "heldout", "lstm", 32, sequence("adding", 15), 3,
                       fb1, depth=2))
    return c


# --- faulty designs ------------------------------------------------------------------------


def vanishing() -> list[Case]:
    v = "vanishing_gradients"
    c = mlp_cases(v, "sigmoid-default", [
        ("dev", 12, 32, "spirals", 0), ("dev", 10, 32, "moons", 1), ("dev", 8, 64, "digits", 2),
        ("heldout", 16, 48, "spirals", 3), ("dev", 10, 32, "teacher", 4),
        ("heldout", 12, 48, "digits", 5)], {}, {"scheme": "default"}, RELU_HE,
        activation="sigmoid")
    c += mlp_cases(v, "sigmoid-xavier", [("heldout", 10, 32, "moons", 6)], {},
                   {"scheme": "xavier_uniform"}, RELU_HE, activation="sigmoid")
    gain1 = [{"path": "init.gain", "value": 1.0}]
    c += mlp_cases(v, "tanh-g0.5", [("dev", 12, 32, "spirals", 0),
                                    ("heldout", 14, 32, "teacher", 2)],
                   {}, normal(0.5), gain1, activation="tanh")
    c += mlp_cases(v, "tanh-g0.4", [("dev", 10, 48, "moons", 1)],
                   {}, normal(0.4), gain1, activation="tanh")
    c += mlp_cases(v, "relu-g0.5", [("dev", 10, 32, "spirals", 1), ("dev", 12, 32, "moons", 3)],
                   {}, normal(0.5), TO_HE)
    c += mlp_cases(v, "relu-g0.6", [("heldout", 12, 48, "digits", 2)], {}, normal(0.6), TO_HE)
    c += mlp_cases(v, "cnn-sigmoid-default", [("dev", 6, 8, "digits_image", 0),
                                              ("heldout", 8, 8, "digits_image", 1)],
                   {}, {"scheme": "default"}, RELU_HE, activation="sigmoid", kind="cnn",
                   batch_size=32)
    return c


def exploding() -> list[Case]:
    e = "exploding_gradients"
    c = mlp_cases(e, "relu-g3", [("dev", 10, 32, "spirals", 0), ("heldout", 8, 48, "teacher", 1)],
                  {}, normal(3.0), TO_HE)
    c += mlp_cases(e, "relu-g2.5", [("dev", 6, 64, "digits", 2), ("dev", 8, 32, "moons", 3)],
                   {}, normal(2.5), TO_HE)
    c += mlp_cases(e, "relu-g4", [("dev", 6, 32, "spirals", 9)], {}, normal(4.0), TO_HE)
    he_gain = [{"path": "init.gain", "value": HE_GAIN}]
    c += mlp_cases(e, "gelu-g3", [("dev", 8, 32, "spirals", 4), ("heldout", 6, 48, "digits", 5)],
                   {}, normal(3.0), he_gain, activation="gelu")
    c += mlp_cases(e, "leaky-relu-g4", [("dev", 6, 32, "moons", 6),
                                        ("heldout", 5, 32, "spirals", 7)],
                   {}, normal(4.0), he_gain, activation="leaky_relu")
    c += mlp_cases(e, "relu-orthogonal-g3", [("heldout", 8, 32, "spirals", 8)], {},
                   {"scheme": "orthogonal", "gain": 3.0}, [{"path": "init.gain", "value": HE_GAIN}])
    c += mlp_cases(e, "cnn-relu-g3", [("dev", 6, 8, "digits_image", 0),
                                      ("heldout", 5, 12, "digits_image", 1)],
                   {}, normal(3.0), TO_HE, kind="cnn", batch_size=32)
    return c


def saturated() -> list[Case]:
    s = "saturated_units"
    no_bias = [{"path": "init.bias_std", "value": 0.0}]
    gain1 = [{"path": "init.gain", "value": 1.0}]
    c = mlp_cases(s, "tanh-bias5", [("dev", 6, 32, "spirals", 0), ("dev", 8, 32, "digits", 1),
                                    ("heldout", 8, 48, "spirals", 2),
                                    ("heldout", 6, 32, "teacher", 3)],
                  {}, normal(1.0, bias_std=5.0), no_bias, activation="tanh")
    c += mlp_cases(s, "hard-tanh-bias4", [("dev", 6, 32, "moons", 4)],
                   {}, normal(1.0, bias_std=4.0), no_bias, activation="hard_tanh")
    c += mlp_cases(s, "hard-tanh-bias6", [("dev", 6, 32, "spirals", 10),
                                          ("heldout", 8, 48, "spirals", 11)],
                   {}, normal(1.0, bias_std=6.0), no_bias, activation="hard_tanh")
    c += mlp_cases(s, "hard-tanh-g8", [("dev", 8, 32, "spirals", 12),
                                       ("heldout", 6, 48, "digits", 13)],
                   {}, normal(8.0), gain1, activation="hard_tanh")
    c += mlp_cases(s, "tanh-g8", [("dev", 8, 32, "spirals", 6), ("heldout", 10, 32, "moons", 7)],
                   {}, normal(8.0), gain1, activation="tanh")
    c += mlp_cases(s, "sigmoid-bias6-lr0.1", [("dev", 3, 48, "digits", 8),
                                              ("heldout", 4, 32, "digits", 9)],
                   {}, normal(1.0, bias_std=6.0), no_bias, activation="sigmoid", lr=0.1)
    return c


def short_memory() -> list[Case]:
    m = "short_memory"
    to_gru = [{"path": "model.family", "value": "gru"}]
    fb1 = [{"path": "init.lstm_forget_bias", "value": 1.0}]
    c = [
        recurrent(m, "rnn", "dev", "rnn", 32, sequence("adding", 25), 0, fix=TO_LSTM),
        recurrent(m, "rnn", "dev", "rnn", 64, sequence("adding", 20), 1, fix=TO_LSTM),
        recurrent(m, "rnn", "heldout", "rnn", 32, sequence("adding", 30), 2, fix=TO_LSTM),
        recurrent(m, "rnn-vs-gru", "heldout", "rnn", 48, sequence("adding", 35), 3, fix=to_gru,
                  lr=0.3),
        recurrent(m, "lstm-fb-3", "dev", "lstm", 32, sequence("adding", 20), 4,
                  {"scheme": "default", "lstm_forget_bias": -3.0}, fb1),
        recurrent(m, "lstm-fb-2", "heldout", "lstm", 32, sequence("adding", 25), 5,
                  {"scheme": "default", "lstm_forget_bias": -2.0}, fb1),
        recurrent(m, "lstm-fb-4", "dev", "lstm", 48, sequence("adding", 30), 6,
                  {"scheme": "default", "lstm_forget_bias": -4.0}, fb1),
        recurrent(m, "rnn-relu", "dev", "rnn", 32, sequence("adding", 20), 7, fix=TO_LSTM,
                  rnn_nonlinearity="relu"),
        recurrent(m, "rnn-vs-gru", "dev", "rnn", 32, sequence("adding", 40), 8, fix=to_gru,
                  lr=0.3),
        recurrent(m, "rnn-2layer", "heldout", "rnn", 48, sequence("adding", 25), 9, fix=TO_LSTM,
                  depth=2),
    ]
    return c


def jagged() -> list[Case]:
    j = "jagged_activation"
    c: list[Case] = []
    ideas = [
        ("sin", 10.0, [("dev", 4, 32, "spirals", 0), ("heldout", 4, 48, "digits", 1)]),
        ("sin", 30.0, [("dev", 3, 32, "moons", 2), ("heldout", 5, 32, "teacher", 3)]),
        ("sawtooth", 10.0, [("dev", 4, 32, "spirals", 4), ("dev", 3, 48, "moons", 5)]),
        ("triangle", 20.0, [("dev", 4, 32, "spirals", 6), ("heldout", 6, 32, "spirals", 7)]),
        ("triangle", 10.0, [("dev", 3, 64, "digits", 8)]),
        ("sawtooth", 20.0, [("heldout", 4, 32, "teacher", 9)]),
    ]
    for act, freq, variants in ideas:
        c += mlp_cases(j, f"{act}-f{freq:g}", variants, {"frequency": freq}, normal(1.0),
                       RELU_HE, activation=act)
    c += mlp_cases(j, "cnn-sin-f10", [("heldout", 3, 8, "digits_image", 0)], {"frequency": 10.0},
                   normal(1.0), RELU_HE, activation="sin", kind="cnn", batch_size=32)
    sin_layers = [{"type": "linear", "out": 32},
                  {"type": "activation", "name": "sin", "frequency": 15.0}] * 3
    fix = [{"path": f"model.layers.{i}.name", "value": "relu"} for i in (1, 3, 5)] + TO_HE
    c.append(layered(j, "layers-sin-f15", "dev", sin_layers, "moons", 1, normal(1.0), fix))
    return c


def lr_too_high() -> list[Case]:
    hi = "lr_too_high"
    c: list[Case] = []
    ideas: list[tuple[str, float, float, Spec, list[Variant], Spec]] = [
        ("lr3", 3.0, 0.9, {}, [("dev", 4, 32, "spirals", 0), ("heldout", 5, 48, "moons", 1)], {}),
        ("lr1", 1.0, 0.9, {}, [("dev", 3, 64, "digits", 2), ("heldout", 4, 32, "teacher", 3),
                                ("dev", 2, 32, "spirals", 11)], {}),
        ("lr1-clip1", 1.0, 0.9, {}, [("dev", 4, 32, "spirals", 4),
                                     ("dev", 5, 32, "spirals", 5)], {"clip_grad_norm": 1.0}),
        ("lr0.6-m0.95", 0.6, 0.95, {}, [("dev", 4, 32, "spirals", 6),
                                        ("heldout", 6, 48, "digits", 7)], {}),
        ("lr2", 2.0, 0.9, {}, [("dev", 3, 32, "moons", 8)], {}),
        ("batchnorm-lr8", 8.0, 0.9, {"normalization": "batch"},
         [("dev", 6, 32, "spirals", 9), ("heldout", 8, 32, "moons", 10)], {}),
    ]
    fix = [{"path": "optimizer.lr", "value": 0.02}]
    for label, lr, mom, extra, variants, opt in ideas:
        c += mlp_cases(hi, label, variants, extra, HE, fix, lr=lr, momentum=mom, **opt)
    c += mlp_cases(hi, "cnn-lr1", [("heldout", 3, 8, "digits_image", 0)], {}, HE, fix,
                   kind="cnn", batch_size=32, lr=1.0)
    c.append(recurrent(hi, "lstm-fb1-lr20", "heldout", "lstm", 32, sequence("adding", 15),
                       1, {"scheme": "default", "lstm_forget_bias": 1.0},
                       [{"path": "optimizer.lr", "value": 0.1}], lr=20.0))
    return c


def lr_too_low() -> list[Case]:
    lo = "lr_too_low_or_frozen"
    fix = [{"path": "optimizer.lr", "value": 0.05}]
    c: list[Case] = []
    ideas: list[tuple[str, float, float, list[Variant]]] = [
        ("lr1e-5", 1e-5, 0.9, [("dev", 4, 32, "moons", 0), ("heldout", 6, 48, "spirals", 1)]),
        ("lr1e-4-m0", 1e-4, 0.0, [("dev", 3, 64, "digits", 2), ("dev", 4, 32, "moons", 3)]),
        ("lr1e-6", 1e-6, 0.9, [("dev", 4, 32, "spirals", 4), ("heldout", 3, 64, "teacher", 5)]),
        ("lr3e-6-m0.5", 3e-6, 0.5, [("dev", 5, 48, "teacher", 6)]),
    ]
    for label, lr, mom, variants in ideas:
        c += mlp_cases(lo, label, variants, {}, HE, fix, lr=lr, momentum=mom)
    c += mlp_cases(lo, "cnn-lr1e-5", [("dev", 2, 8, "digits_image", 0),
                                      ("heldout", 3, 8, "digits_image", 1)], {}, HE, fix,
                   kind="cnn", batch_size=32, lr=1e-5)
    c.append(recurrent(lo, "lstm-fb1-lr1e-5", "heldout", "lstm", 32, sequence("adding", 15), 2,
                       {"scheme": "default", "lstm_forget_bias": 1.0},
                       [{"path": "optimizer.lr", "value": 0.1}], lr=1e-5))
    return c


def all_cases() -> list[Case]:
    """Every case, in a fixed order; names are unique and no two specs are the same design.

    The first batch (below) is followed by the second (``cases2.py``: dev additions and the
    fresh ``heldout2`` split, whose designs must share no seed, data spec, width or depth with
    dev or heldout), then the third and fourth (``cases3.py``: attention designs, Post-LN).
    """
    from cases2 import check_fresh, more_cases  # a sibling script
    from cases3 import attention_cases, post_ln_cases

    cases = [*healthy(), *vanishing(), *exploding(), *saturated(), *short_memory(), *jagged(),
             *lr_too_high(), *lr_too_low(), *more_cases()]
    stale = check_fresh(cases)
    if stale:
        raise ValueError("heldout2 designs not fresh:\n" + "\n".join(stale))
    cases += attention_cases() + post_ln_cases()
    names = Counter(c.name for c in cases)
    dupes = [n for n, k in names.items() if k > 1]
    if dupes:
        raise ValueError(f"duplicate case names: {dupes}")
    designs = Counter(
        json.dumps({k: v for k, v in c.spec.items() if k != "name"}, sort_keys=True)
        for c in cases
    )
    if max(designs.values()) > 1:
        raise ValueError("two cases share the same spec")
    for case in cases:
        if case.intended not in ("healthy", *CLASSES):
            raise ValueError(f"{case.name}: unknown class {case.intended}")
        if (case.intended == "healthy") != (case.fix is None):
            raise ValueError(f"{case.name}: faulty cases need a fix, healthy ones none")
    return cases


def fixed_spec(case: Case) -> Spec | None:
    """The fixed twin's spec (named ``<name>+fix``), or None for a healthy case."""
    if case.fix is None:
        return None
    spec = apply_edits(case.spec, case.fix)
    spec["name"] = f"{case.name}+fix"
    return spec


def validate(url: str, cases: list[Case]) -> int:
    """Dry-run every spec and fixed twin at ``POST /v1/specs/validate``; 1 if any is refused."""
    import httpx

    bad = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for case in cases:
            for spec in (case.spec, fixed_spec(case)):
                if spec is None:
                    continue
                response = client.post("/v1/specs/validate", json=spec)
                if response.status_code != 200:
                    bad += 1
                    print(f"{spec['name']}: {response.status_code} {response.text[:400]}")
    print(f"validated {len(cases)} cases: {bad} spec(s) refused")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="write every case (and its fixed twin) to this file")
    parser.add_argument("--validate", metavar="URL", help="dry-run every spec on a service")
    args = parser.parse_args(argv)
    cases = all_cases()
    table = Counter((c.intended, c.split) for c in cases)
    for cls in ("healthy", *CLASSES):
        print(f"{cls:24s} " + "  ".join(f"{s} {table[cls, s]:3d}" for s in SPLITS))
    print(f"{'total':24s} {len(cases)} cases, {sum(c.fix is not None for c in cases)} fixed twins")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump([{**asdict(c), "fixed_spec": fixed_spec(c)} for c in cases], fh, indent=1)
    return validate(args.validate, cases) if args.validate else 0


if __name__ == "__main__":
    sys.exit(main())
