"""The second batch of designs: dev additions where dev evidence was thin, and ``heldout2``.

``cases.all_cases()`` appends these to the first batch (whose cases are unchanged), so one
generator, one ``label.py`` and one ``labels.json`` cover both.

- **Dev additions** (``split: "dev"``): recurrent designs (healthy LSTM with forget bias 1 and
  GRU on adding T = 15-35 and copy, 1-2 layers, widths 32-64, several seeds and learning rates,
  with and without clipping; vanilla RNNs on short tasks they solve; faulty vanilla tanh/ReLU
  RNNs on adding T = 20-40 and LSTMs with forget bias -1...-4), healthy designs of kinds that
  sit near a rule's boundary (batch norm at a high lr, deep residual nets, momentum 0.99 with
  a small lr, Nesterov, cosine schedules, ReLU CNNs, SELU/GELU), and faulty lr / exploding
  designs of moderate severity.
- **heldout2**: a fresh held-out set over every class and family. Its seeds, data specs,
  widths and (feed-forward) depths appear nowhere in dev or heldout; :func:`check_fresh`
  refuses the set otherwise. Nothing is tuned on it: it is reported once, at the end.

Seeds: dev additions use 20-69, heldout2 100-199 (the first batch used 0-13).
"""

from __future__ import annotations

import copy
import json
from typing import Any

from cases import (
    HE,
    HE_GAIN,
    RELU_HE,
    TO_HE,
    TO_LSTM,
    Case,
    Edit,
    Spec,
    Split,
    experiment,
    family,
    mlp_cases,
    normal,
    recurrent,
    sequence,
    tag,
)

FB1: Spec = {"scheme": "default", "lstm_forget_bias": 1.0}
TO_GRU: list[Edit] = [{"path": "model.family", "value": "gru"}]
rec = recurrent  # the short name these tables use
TO_FB1: list[Edit] = [{"path": "init.lstm_forget_bias", "value": 1.0}]
GAIN1: list[Edit] = [{"path": "init.gain", "value": 1.0}]
NO_BIAS: list[Edit] = [{"path": "init.bias_std", "value": 0.0}]
TO_HE_GAIN: list[Edit] = [{"path": "init.gain", "value": HE_GAIN}]
LR_002: list[Edit] = [{"path": "optimizer.lr", "value": 0.02}]
LR_005: list[Edit] = [{"path": "optimizer.lr", "value": 0.05}]
LR_01: list[Edit] = [{"path": "optimizer.lr", "value": 0.1}]


def lstm_fb(bias: float) -> Spec:
    return {"scheme": "default", "lstm_forget_bias": bias}


def lay(
    intended: str,
    label: str,
    split: Split,
    layers: list[Spec],
    data: str | Spec,
    data_tag: str,
    seed: int,
    init: Spec,
    fix: list[Edit] | None = None,
    **opt: Any,
) -> Case:
    """A design given as an explicit layer list (``data_tag`` names the data in the name)."""
    name = tag(intended, label, data_tag, f"s{seed}")
    spec = experiment(name, {"layers": layers}, data, init=init, seed=seed, **opt)
    return Case(name, split, intended, spec, fix)


def renamed_activations(layers: list[Spec], name: str) -> list[Edit]:
    """Edits that set every top-level activation layer of a layer list to ``name``."""
    return [{"path": f"model.layers.{i}.name", "value": name}
            for i, layer in enumerate(layers) if layer.get("type") == "activation"]


# --- dev additions -------------------------------------------------------------------------


def dev_recurrent() -> list[Case]:
    h, m = "healthy", "short_memory"
    d: Split = "dev"
    c = [
        # LSTM with forget bias 1 and GRU within their memory: adding T = 15-35 and copy.
        rec(h, "lstm-fb1", d, "lstm", 48, sequence("adding", 15), 20, FB1),
        rec(h, "lstm-fb1-lr0.3", d, "lstm", 64, sequence("adding", 20), 21, FB1, lr=0.3),
        rec(h, "lstm-fb1", d, "lstm", 32, sequence("adding", 30), 22, FB1, clip=None),
        rec(h, "lstm-fb1-lr0.3", d, "lstm", 32, sequence("adding", 35), 23, FB1, lr=0.3),
        rec(h, "lstm-fb1-2layer", d, "lstm", 32, sequence("adding", 20), 24, FB1, depth=2),
        rec(h, "gru", d, "gru", 32, sequence("adding", 15), 25, clip=None),
        rec(h, "gru-lr0.3", d, "gru", 48, sequence("adding", 25), 26, lr=0.3),
        rec(h, "gru-lr0.3", d, "gru", 32, sequence("adding", 35), 27, lr=0.3),
        rec(h, "gru-2layer", d, "gru", 32, sequence("adding", 20), 28, depth=2),
        rec(h, "lstm-fb1-lr0.3", d, "lstm", 64, sequence("copy", 6, symbols=3, alphabet=8), 29,
            FB1, lr=0.3),
        rec(h, "gru-lr0.3", d, "gru", 48, sequence("copy", 5, symbols=3, alphabet=8), 30,
            lr=0.3, clip=None),
        rec(h, "gru", d, "gru", 32, sequence("copy", 8, symbols=2, alphabet=6), 31),
        # A vanilla RNN on tasks short enough for it.
        rec(h, "rnn", d, "rnn", 32, sequence("adding", 5), 32),
        rec(h, "rnn", d, "rnn", 48, sequence("copy", 2, symbols=2, alphabet=4), 33),
        rec(h, "rnn-relu", d, "rnn", 32, sequence("adding", 4), 34, rnn_nonlinearity="relu"),
        # Faulty: vanilla RNNs on adding T = 20-40; LSTMs whose forget gates start closed.
        rec(m, "rnn", d, "rnn", 48, sequence("adding", 20), 40, fix=TO_LSTM),
        rec(m, "rnn-vs-gru", d, "rnn", 64, sequence("adding", 30), 41, fix=TO_GRU, lr=0.3),
        rec(m, "rnn", d, "rnn", 32, sequence("adding", 35), 42, fix=TO_LSTM, clip=None),
        rec(m, "rnn-relu", d, "rnn", 48, sequence("adding", 25), 43, fix=TO_LSTM,
            rnn_nonlinearity="relu"),
        rec(m, "rnn-relu-vs-gru", d, "rnn", 32, sequence("adding", 40), 44, fix=TO_GRU,
            rnn_nonlinearity="relu"),
        rec(m, "lstm-fb-1", d, "lstm", 32, sequence("adding", 30), 45, lstm_fb(-1.0), TO_FB1),
        rec(m, "lstm-fb-2", d, "lstm", 48, sequence("adding", 20), 46, lstm_fb(-2.0), TO_FB1),
        rec(m, "lstm-fb-3", d, "lstm", 32, sequence("adding", 30), 47, lstm_fb(-3.0), TO_FB1),
        rec(m, "lstm-fb-4", d, "lstm", 64, sequence("adding", 25), 48, lstm_fb(-4.0), TO_FB1),
        rec(m, "rnn-2layer", d, "rnn", 32, sequence("adding", 20), 49, fix=TO_LSTM, depth=2),
        rec(m, "rnn", d, "rnn", 64, sequence("adding", 25), 35, fix=TO_LSTM),
        rec(m, "rnn-relu-vs-gru", d, "rnn", 32, sequence("adding", 30), 36, fix=TO_GRU, lr=0.3,
            rnn_nonlinearity="relu"),
    ]
    return c


def dev_boundary() -> list[Case]:
    """Healthy designs near a rule's boundary, and moderate lr / exploding faults."""
    h = "healthy"
    c: list[Case] = []
    c += mlp_cases(h, "batchnorm-lr0.4", [("dev", 8, 32, "spirals", 50)],
                   {"normalization": "batch"}, HE, lr=0.4)
    c += mlp_cases(h, "batchnorm-lr0.3", [("dev", 6, 48, "moons", 51)],
                   {"normalization": "batch"}, HE, lr=0.3)
    c += mlp_cases(h, "relu-residual", [("dev", 20, 32, "spirals", 52)],
                   {"residual": True}, normal(0.5))
    c += mlp_cases(h, "resmlp-relu-batchnorm", [("dev", 12, 32, "moons", 53)],
                   {"normalization": "batch"}, HE, kind="resmlp")
    c += mlp_cases(h, "momentum099-lr003", [("dev", 6, 32, "moons", 54)], {}, HE,
                   lr=0.003, momentum=0.99)
    c += mlp_cases(h, "momentum099-lr001", [("dev", 3, 64, "digits", 55)], {}, HE,
                   lr=0.001, momentum=0.99)
    c += mlp_cases(h, "nesterov-cosine-lr0.1", [("dev", 4, 48, "spirals", 56)], {}, HE,
                   lr=0.1, nesterov=True, schedule={"kind": "cosine"})
    c += mlp_cases(h, "cosine-min0.1", [("dev", 8, 32, "moons", 57)], {}, HE,
                   lr=0.05, schedule={"kind": "cosine", "min_factor": 0.1})
    c += mlp_cases(h, "cnn-relu-he", [("dev", 6, 12, "digits_image", 58)], {}, HE, kind="cnn",
                   batch_size=32)
    c += mlp_cases(h, "cnn-relu-he-lr0.1", [("dev", 4, 8, "digits_image", 59)], {}, HE,
                   kind="cnn", batch_size=32, lr=0.1)
    c += mlp_cases(h, "selu-lecun", [("dev", 8, 48, "digits", 60),
                                     ("dev", 16, 32, "spirals", 61)],
                   {}, normal(1.0), activation="selu")
    c += mlp_cases(h, "gelu-he", [("dev", 10, 32, "spirals", 62)], {}, HE, activation="gelu")
    # Moderate faults: just above the stable lr, just too small an lr, gains a bit above He.
    c += mlp_cases("lr_too_high", "lr0.5", [("dev", 4, 32, "spirals", 63)], {}, HE, LR_002,
                   lr=0.5)
    c += mlp_cases("lr_too_high", "lr0.4", [("dev", 3, 64, "digits", 64)], {}, HE, LR_002,
                   lr=0.4)
    c += mlp_cases("lr_too_high", "lr0.8-clip1", [("dev", 3, 48, "moons", 65)], {}, HE, LR_002,
                   lr=0.8, clip_grad_norm=1.0)
    c += mlp_cases("lr_too_low_or_frozen", "lr3e-4-m0", [("dev", 4, 32, "spirals", 66)], {}, HE,
                   LR_005, lr=3e-4, momentum=0.0)
    c += mlp_cases("lr_too_low_or_frozen", "lr5e-5", [("dev", 3, 48, "digits", 67)], {}, HE,
                   LR_005, lr=5e-5)
    c += mlp_cases("lr_too_low_or_frozen", "lr2e-4-m0", [("dev", 3, 32, "teacher", 68)], {}, HE,
                   LR_005, lr=2e-4, momentum=0.0)
    c += mlp_cases("exploding_gradients", "relu-g2.2", [("dev", 10, 32, "spirals", 69)], {},
                   normal(2.2), TO_HE)
    c += mlp_cases("exploding_gradients", "gelu-g2.5", [("dev", 8, 48, "moons", 20)], {},
                   normal(2.5), TO_HE_GAIN, activation="gelu")
    c += mlp_cases("exploding_gradients", "relu-g2.5", [("dev", 6, 32, "teacher", 21)], {},
                   normal(2.5), TO_HE)
    c += mlp_cases("lr_too_high", "lr0.3", [("dev", 6, 48, "spirals", 37)], {}, HE, LR_002,
                   lr=0.3)
    c += mlp_cases("lr_too_low_or_frozen", "lr1e-3-m0", [("dev", 3, 32, "moons", 38)], {}, HE,
                   LR_005, lr=1e-3, momentum=0.0)
    c += mlp_cases("exploding_gradients", "relu-g2", [("dev", 12, 32, "moons", 39)], {},
                   normal(2.0), TO_HE)
    return c


# --- heldout2 ------------------------------------------------------------------------------

# Data specs that appear nowhere in dev or heldout (other noise, turns, arms, input size,
# validation split, sequence lengths and alphabets).
DATA2: dict[str, Spec] = {
    "spirals2": {"kind": "spirals", "arms": 2, "turns": 1.25, "noise": 0.08,
                 "n_train": 2048, "n_val": 512},
    "spirals3": {"kind": "spirals", "arms": 3, "turns": 1.0, "noise": 0.05,
                 "n_train": 2048, "n_val": 512},
    "moons2": {"kind": "moons", "noise": 0.15, "n_train": 2048, "n_val": 512},
    "digits2": {"kind": "digits", "layout": "flat", "val_fraction": 0.25},
    "digits_image2": {"kind": "digits", "layout": "image", "val_fraction": 0.25},
    "teacher2": {"kind": "teacher", "task": "regression", "input_dim": 10, "output_dim": 1,
                 "n_train": 2048, "n_val": 512},
}
STEPS2 = {"spirals2": 1000, "spirals3": 1200, "moons2": 600, "digits2": 500,
          "digits_image2": 400, "teacher2": 800}
H2: Split = "heldout2"


def ff2(
    intended: str,
    label: str,
    depth: int,
    width: int,
    data: str,
    seed: int,
    init: Spec,
    fix: list[Edit] | None = None,
    *,
    activation: str = "relu",
    kind: str = "mlp",
    model_extra: Spec | None = None,
    **opt: Any,
) -> Case:
    """One heldout2 feed-forward design (family shorthand) on a DATA2 dataset."""
    name = tag(intended, label, data, f"d{depth}", f"w{width}", f"s{seed}")
    model = family(kind, depth, width, activation, **(model_extra or {}))
    if kind == "cnn":
        opt.setdefault("batch_size", 32)
    spec = experiment(name, model, copy.deepcopy(DATA2[data]), init=copy.deepcopy(init),
                      seed=seed, steps=opt.pop("steps", STEPS2[data]), **opt)
    return Case(name, H2, intended, spec, fix)


def lay2(intended: str, label: str, layers: list[Spec], data: str, seed: int, init: Spec,
         fix: list[Edit] | None = None, **opt: Any) -> Case:
    opt.setdefault("steps", STEPS2[data])
    return lay(intended, label, H2, layers, copy.deepcopy(DATA2[data]), data, seed, init, fix,
               **opt)


def heldout2_healthy() -> list[Case]:
    """The second held-out batch's healthy designs. Long: a table, one entry per design."""
    h = "healthy"
    bn_mlp = {"normalization": "batch"}
    c = [
        ff2(h, "relu-he", 7, 40, "spirals2", 100, HE),
        ff2(h, "gelu-he", 9, 40, "moons2", 101, HE, activation="gelu"),
        ff2(h, "silu-he", 7, 56, "digits2", 102, HE, activation="silu"),
        ff2(h, "elu-he", 1, 56, "teacher2", 103, HE, activation="elu"),
        ff2(h, "leaky-relu-kaiming-uniform", 9, 40, "spirals3", 104,
            {"scheme": "kaiming_uniform"}, activation="leaky_relu"),
        ff2(h, "selu-lecun", 11, 40, "spirals2", 105, normal(1.0), activation="selu"),
        ff2(h, "tanh-g1", 11, 40, "moons2", 106, normal(1.0), activation="tanh"),
        ff2(h, "tanh-xavier", 7, 24, "digits2", 107, {"scheme": "xavier_uniform"},
            activation="tanh"),
        ff2(h, "relu-orthogonal", 9, 40, "spirals2", 108, {"scheme": "orthogonal",
                                                          "gain": HE_GAIN}),
        ff2(h, "relu-residual", 15, 40, "spirals2", 109, normal(0.5),
            model_extra={"residual": True}),
        ff2(h, "relu-batchnorm", 13, 40, "digits2", 110, normal(1.0), model_extra=bn_mlp),
        ff2(h, "batchnorm-lr0.25", 9, 40, "spirals2", 111, HE, model_extra=bn_mlp, lr=0.25),
        ff2(h, "momentum099-lr003", 7, 40, "moons2", 112, HE, lr=0.003, momentum=0.99),
        ff2(h, "nesterov-cosine-warmup", 9, 40, "spirals3", 113, HE, lr=0.05, nesterov=True,
            schedule={"kind": "cosine", "warmup_steps": 150}),
        ff2(h, "no-momentum-lr0.3", 7, 40, "moons2", 114, HE, lr=0.3, momentum=0.0),
        ff2(h, "step-schedule-lr0.1", 7, 56, "digits2", 115, HE, lr=0.1,
            schedule={"kind": "step", "step_size": 250, "gamma": 0.3}),
        ff2(h, "sin-f1", 7, 40, "spirals2", 116, normal(1.0), activation="sin",
            model_extra={"frequency": 1.0}),
        ff2(h, "softplus-he", 7, 24, "moons2", 117, HE, activation="softplus"),
        ff2(h, "resmlp-gelu-layernorm", 7, 40, "spirals3", 118, HE, activation="gelu",
            kind="resmlp", model_extra={"normalization": "layer"}),
        ff2(h, "cnn-relu-he", 1, 14, "digits_image2", 119, HE, kind="cnn"),
        ff2(h, "cnn-gelu-he", 7, 10, "digits_image2", 120, HE, kind="cnn", activation="gelu"),
        ff2(h, "cnn-relu-batchnorm", 7, 10, "digits_image2", 121, HE, kind="cnn",
            model_extra={"normalization": "batch"}),
        ff2(h, "cnn-relu-residual", 9, 6, "digits_image2", 122, normal(0.5), kind="cnn",
            model_extra={"residual": True}),
    ]
    maxout = {"type": "maxout", "out": 40, "pieces": 2}
    c.append(lay2(h, "maxout-7x40", [maxout] * 7, "spirals2", 123, normal(1.0)))
    drop = [{"type": "linear", "out": 56}, {"type": "activation", "name": "relu"},
            {"type": "dropout", "p": 0.2}]
    c.append(lay2(h, "dropout-4x56", drop * 4, "digits2", 124, HE))
    pre_ln = {"type": "residual", "body": [
        {"type": "layer_norm"}, {"type": "linear", "out": 40},
        {"type": "activation", "name": "gelu"}]}
    c.append(lay2(h, "pre-ln-residual-x7", [{"type": "linear", "out": 40}, *[pre_ln] * 7],
                  "spirals3", 125, HE))
    post_bn = {"type": "residual", "body": [
        {"type": "linear", "out": 24}, {"type": "batch_norm"},
        {"type": "activation", "name": "relu"}]}
    c.append(lay2(h, "residual-bn-x9", [{"type": "linear", "out": 24}, *[post_bn] * 9],
                  "moons2", 126, HE))
    conv = [
        {"type": "conv2d", "out_channels": 10, "padding": 1}, {"type": "layer_norm"},
        {"type": "activation", "name": "relu"}, {"type": "avg_pool"},
        {"type": "conv2d", "out_channels": 14, "padding": 1}, {"type": "batch_norm"},
        {"type": "activation", "name": "relu"}, {"type": "max_pool"}, {"type": "flatten"},
        {"type": "dropout", "p": 0.2},
    ]
    c.append(lay2(h, "conv-ln-bn-pool", conv, "digits_image2", 127, HE, batch_size=32))
    c += [
        rec(h, "lstm-fb1", H2, "lstm", 40, sequence("adding", 22), 128, FB1),
        rec(h, "gru", H2, "gru", 24, sequence("adding", 27), 129, clip=None),
        rec(h, "lstm-fb1-lr0.3", H2, "lstm", 56, sequence("copy", 6, symbols=3, alphabet=7),
            130, FB1, lr=0.3),
        rec(h, "gru-2layer", H2, "gru", 40, sequence("adding", 18), 131, depth=2),
        rec(h, "rnn", H2, "rnn", 40, sequence("adding", 6), 132),
        rec(h, "rnn", H2, "rnn", 24, sequence("copy", 2, symbols=2, alphabet=5), 133),
    ]
    return c


def heldout2_faulty() -> list[Case]:
    """The second held-out batch's faulty designs. Long: a table, one entry per design."""
    v, e, s = "vanishing_gradients", "exploding_gradients", "saturated_units"
    m, j, hi, lo = "short_memory", "jagged_activation", "lr_too_high", "lr_too_low_or_frozen"
    default = {"scheme": "default"}
    c = [
        ff2(v, "sigmoid-default", 9, 40, "spirals2", 140, default, RELU_HE, activation="sigmoid"),
        ff2(v, "sigmoid-xavier", 11, 24, "digits2", 141, {"scheme": "xavier_normal"}, RELU_HE,
            activation="sigmoid"),
        ff2(v, "tanh-g0.45", 13, 40, "moons2", 142, normal(0.45), GAIN1, activation="tanh"),
        ff2(v, "relu-g0.55", 11, 40, "spirals3", 143, normal(0.55), TO_HE),
        ff2(v, "cnn-sigmoid-default", 7, 10, "digits_image2", 144, default, RELU_HE,
            activation="sigmoid", kind="cnn"),
        ff2(e, "relu-g3", 9, 40, "spirals2", 150, normal(3.0), TO_HE),
        ff2(e, "relu-g2.8", 7, 56, "digits2", 151, normal(2.8), TO_HE),
        ff2(e, "gelu-g3.5", 7, 24, "moons2", 152, normal(3.5), TO_HE_GAIN, activation="gelu"),
        ff2(e, "leaky-relu-g3", 9, 40, "teacher2", 153, normal(3.0), TO_HE_GAIN,
            activation="leaky_relu"),
        ff2(e, "relu-orthogonal-g3.5", 7, 40, "spirals3", 154,
            {"scheme": "orthogonal", "gain": 3.5}, TO_HE_GAIN),
        ff2(e, "cnn-relu-g3.5", 7, 10, "digits_image2", 155, normal(3.5), TO_HE, kind="cnn"),
        ff2(s, "tanh-bias5", 7, 40, "spirals2", 160, normal(1.0, bias_std=5.0), NO_BIAS,
            activation="tanh"),
        ff2(s, "tanh-g8", 9, 24, "digits2", 161, normal(8.0), GAIN1, activation="tanh"),
        ff2(s, "hard-tanh-bias6", 7, 56, "moons2", 162, normal(1.0, bias_std=6.0), NO_BIAS,
            activation="hard_tanh"),
        ff2(s, "sigmoid-bias6-lr0.1", 1, 56, "digits2", 163, normal(1.0, bias_std=6.0), NO_BIAS,
            activation="sigmoid", lr=0.1),
        ff2(s, "hard-tanh-g8", 9, 40, "spirals3", 164, normal(8.0), GAIN1,
            activation="hard_tanh"),
        ff2(s, "tanh-bias4.5", 9, 40, "teacher2", 165, normal(1.0, bias_std=4.5), NO_BIAS,
            activation="tanh"),
        rec(m, "rnn", H2, "rnn", 40, sequence("adding", 27), 170, fix=TO_LSTM),
        rec(m, "rnn-vs-gru", H2, "rnn", 24, sequence("adding", 33), 171, fix=TO_GRU, lr=0.3),
        rec(m, "rnn-relu", H2, "rnn", 40, sequence("adding", 22), 172, fix=TO_LSTM,
            rnn_nonlinearity="relu"),
        rec(m, "rnn-2layer", H2, "rnn", 24, sequence("adding", 24), 173, fix=TO_LSTM, depth=2),
        rec(m, "lstm-fb-2.5", H2, "lstm", 40, sequence("adding", 32), 174, lstm_fb(-2.5),
            TO_FB1),
        rec(m, "lstm-fb-3.5", H2, "lstm", 56, sequence("adding", 22), 175, lstm_fb(-3.5),
            TO_FB1),
        ff2(j, "sin-f12", 7, 40, "spirals2", 180, normal(1.0), RELU_HE, activation="sin",
            model_extra={"frequency": 12.0}),
        ff2(j, "sawtooth-f15", 7, 24, "moons2", 181, normal(1.0), RELU_HE,
            activation="sawtooth", model_extra={"frequency": 15.0}),
        ff2(j, "triangle-f25", 9, 40, "digits2", 182, normal(1.0), RELU_HE,
            activation="triangle", model_extra={"frequency": 25.0}),
        ff2(j, "sin-f20", 7, 40, "teacher2", 183, normal(1.0), RELU_HE, activation="sin",
            model_extra={"frequency": 20.0}),
        ff2(j, "cnn-sawtooth-f12", 7, 6, "digits_image2", 184, normal(1.0), RELU_HE,
            activation="sawtooth", kind="cnn", model_extra={"frequency": 12.0}),
        ff2(hi, "lr2.5", 7, 40, "spirals2", 190, HE, LR_002, lr=2.5),
        ff2(hi, "lr1.2-clip0.5", 7, 24, "moons2", 191, HE, LR_002, lr=1.2, clip_grad_norm=0.5),
        ff2(hi, "lr0.8-m0.95", 9, 40, "digits2", 192, HE, LR_002, lr=0.8, momentum=0.95),
        ff2(hi, "batchnorm-lr10", 7, 40, "spirals3", 193, HE, LR_002,
            model_extra={"normalization": "batch"}, lr=10.0),
        ff2(hi, "nesterov-lr1.5", 1, 56, "teacher2", 194, HE, LR_002, lr=1.5, nesterov=True),
        ff2(hi, "cnn-lr1.5", 1, 14, "digits_image2", 195, HE, LR_002, kind="cnn", lr=1.5),
        rec(hi, "gru-lr15", H2, "gru", 40, sequence("adding", 18), 196, fix=LR_01, lr=15.0),
        ff2(lo, "lr2e-5", 7, 40, "spirals2", 197, HE, LR_005, lr=2e-5),
        ff2(lo, "lr3e-5-m0", 9, 40, "moons2", 198, HE, LR_005, lr=3e-5, momentum=0.0),
        ff2(lo, "lr5e-6", 1, 56, "digits2", 199, HE, LR_005, lr=5e-6),
        ff2(lo, "lr1e-5-m0.5", 7, 24, "teacher2", 186, HE, LR_005, lr=1e-5, momentum=0.5),
        ff2(lo, "cnn-lr2e-5", 7, 6, "digits_image2", 187, HE, LR_005, kind="cnn", lr=2e-5),
        rec(lo, "gru-lr2e-5", H2, "gru", 24, sequence("adding", 12), 188, fix=LR_01, lr=2e-5),
    ]
    sig = [{"type": "linear", "out": 40}, {"type": "activation", "name": "sigmoid"}] * 9
    c.append(lay2(v, "layers-sigmoid-9x40", sig, "teacher2", 145, {"scheme": "default"},
                  renamed_activations(sig, "relu") + RELU_HE[1:]))
    tri = [{"type": "linear", "out": 40},
           {"type": "activation", "name": "triangle", "frequency": 15.0}] * 4
    c.append(lay2(j, "layers-triangle-f15", tri, "spirals3", 185, normal(1.0),
                  renamed_activations(tri, "relu") + TO_HE))
    mo = [{"type": "maxout", "out": 24, "pieces": 3}] * 7
    c.append(lay2(lo, "layers-maxout-lr1e-5", mo, "spirals3", 189, normal(1.0), LR_005,
                  lr=1e-5))
    return c


def more_cases() -> list[Case]:
    """The second batch, in a fixed order."""
    return [*dev_recurrent(), *dev_boundary(), *heldout2_healthy(), *heldout2_faulty()]


# --- freshness of heldout2 -----------------------------------------------------------------


def _form(spec: Spec) -> str:
    model = spec["model"]
    if "layers" in model:
        return "layers"
    if model["family"] in ("rnn", "gru", "lstm"):
        return "recurrent"
    return "cnn" if model["family"] == "cnn" else "mlp"


def _widths(spec: Spec) -> set[int]:
    model = spec["model"]
    if "width" in model:
        return {model["width"]}
    out: set[int] = set()

    def walk(layers: list[Spec]) -> None:
        for layer in layers:
            for key in ("out", "out_channels", "hidden"):
                if key in layer:
                    out.add(layer[key])
            walk(layer.get("body", []))

    walk(model["layers"])
    return out


def _depth(spec: Spec) -> int:
    model = spec["model"]
    return model["depth"] if "depth" in model else len(model["layers"])


def check_fresh(cases: list[Case]) -> list[str]:
    """Why any heldout2 design is not fresh: its seed, its data spec, any of its widths
    (units, channels, hidden sizes, compared with every dev/heldout design's) or its depth
    (family depth, or a layer list's length; compared within mlp/resmlp, cnn and layer-list
    designs) already appears in a dev or heldout design. Recurrent depth is 1 or 2 everywhere
    (deeper stacks do not fit the budget), so it is not compared.
    """
    old = [c for c in cases if c.split != "heldout2"]
    seeds = {c.spec["training"]["seed"] for c in old}
    data = {json.dumps(c.spec["data"], sort_keys=True) for c in old}
    widths = set().union(*(_widths(c.spec) for c in old))
    depths: dict[str, set[int]] = {}
    for case in old:
        depths.setdefault(_form(case.spec), set()).add(_depth(case.spec))
    problems = []
    for case in cases:
        if case.split != "heldout2":
            continue
        spec, form = case.spec, _form(case.spec)
        if spec["training"]["seed"] in seeds:
            problems.append(f"{case.name}: seed {spec['training']['seed']} is used in dev/heldout")
        if json.dumps(spec["data"], sort_keys=True) in data:
            problems.append(f"{case.name}: its data spec is used in dev/heldout")
        if _widths(spec) & widths:
            problems.append(f"{case.name}: width(s) {sorted(_widths(spec) & widths)} used in "
                            "dev/heldout")
        if form != "recurrent" and _depth(spec) in depths.get(form, set()):
            problems.append(f"{case.name}: depth {_depth(spec)} used in dev/heldout {form} "
                            "designs")
    return problems


if __name__ == "__main__":  # a quick look: python bench/findings/cases2.py
    from collections import Counter

    batch = more_cases()
    print(Counter((c.split, c.intended) for c in batch))
    print(sum(1 for c in batch if c.fix), "fixed twins")
