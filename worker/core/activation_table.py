"""What each activation is, without torch: kind, parameters and largest slope max|phi'|.

A torch-free mirror of ``worker/compute/activations.py`` for the catalog and client-side checks; a
worker test asserts that :func:`max_abs_derivative` equals the torch implementation's value
for every activation and parameter setting, so the two cannot drift apart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from worker.core.spec.base import ActivationName
from worker.core.spec.layers import ActivationLayer

ActivationKind = Literal["linear", "relu_like", "saturating", "oscillating"]
ActivationParameter = Literal["frequency", "negative_slope", "alpha"]

SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


@dataclass(frozen=True)
class ActivationInfo:
    """One activation's vocabulary entry."""

    name: ActivationName
    kind: ActivationKind
    formula: str  # phi(z), with its parameters by name
    parameters: tuple[ActivationParameter, ...]  # fields of ActivationLayer it reads
    max_abs_derivative_formula: str


def _gelu_max() -> float:
    """gelu'(z) = Phi(z) + z phi(z) peaks where gelu''(z) = phi(z)(2 - z^2) = 0, at sqrt 2."""
    z = math.sqrt(2.0)
    return 0.5 * (1.0 + math.erf(z / math.sqrt(2.0))) + z * math.exp(-0.5 * z * z) / math.sqrt(
        2.0 * math.pi
    )


def _silu_max() -> float:
    """silu'(z) = s(1 + z(1 - s)) peaks where silu''(z) = s(1-s)(2 + z(1 - 2s)) = 0 (z > 0);
    ``2 + z(1 - 2 s(z))`` falls monotonically on [1, 5], so bisection finds the root."""

    def g(z: float) -> float:
        return 2.0 + z * (1.0 - 2.0 / (1.0 + math.exp(-z)))

    lo, hi = 1.0, 5.0
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if g(mid) > 0 else (lo, mid)
    z = 0.5 * (lo + hi)
    s = 1.0 / (1.0 + math.exp(-z))
    return s * (1.0 + z * (1.0 - s))


GELU_MAX_ABS_DERIVATIVE = _gelu_max()
SILU_MAX_ABS_DERIVATIVE = _silu_max()

ACTIVATIONS: dict[ActivationName, ActivationInfo] = {
    info.name: info
    for info in (
        ActivationInfo("identity", "linear", "z", (), "1"),
        ActivationInfo("relu", "relu_like", "max(0, z)", (), "1"),
        ActivationInfo(
            "leaky_relu", "relu_like", "z if z > 0 else negative_slope * z",
            ("negative_slope",), "max(1, negative_slope)",
        ),
        ActivationInfo(
            "elu", "relu_like", "z if z > 0 else alpha * (exp(z) - 1)", ("alpha",),
            "max(1, alpha)",
        ),
        ActivationInfo(
            "selu", "relu_like", "scale * (z if z > 0 else alpha0 * (exp(z) - 1)), "
            "scale = 1.0507, alpha0 = 1.6733 (fixed)", (), "scale * alpha0 = 1.7581",
        ),
        ActivationInfo("gelu", "relu_like", "z * Phi(z) (exact, erf)", (),
                       "Phi(sqrt 2) + sqrt 2 * phi(sqrt 2) = 1.1289"),
        ActivationInfo("silu", "relu_like", "z * sigmoid(z)", (), "1.0998 (at z = 2.3994)"),
        ActivationInfo("softplus", "relu_like", "log(1 + exp(z))", (), "1"),
        ActivationInfo("tanh", "saturating", "tanh(z)", (), "1"),
        ActivationInfo("sigmoid", "saturating", "1 / (1 + exp(-z))", (), "1/4"),
        ActivationInfo("hard_tanh", "saturating", "clamp(z, -1, 1)", (), "1"),
        ActivationInfo("sin", "oscillating", "sin(frequency * z)", ("frequency",), "frequency"),
        ActivationInfo(
            "triangle", "oscillating",
            "triangle wave in [-1, 1] with sin's phase and period 2 pi / frequency",
            ("frequency",), "2 * frequency / pi",
        ),
        ActivationInfo(
            "sawtooth", "oscillating",
            "sawtooth in [-1, 1): slope frequency / pi, drops by 2 every 2 pi / frequency",
            ("frequency",), "frequency / pi",
        ),
    )
}


def max_abs_derivative(layer: ActivationLayer) -> float:  # noqa: C901 - a flat table
    """max over z of |phi'(z)| for the activation ``layer`` names, with its parameters."""
    name, w = layer.name, layer.frequency
    if name == "leaky_relu":
        return max(1.0, layer.negative_slope)
    if name == "elu":
        return max(1.0, layer.alpha)
    if name == "selu":
        return SELU_SCALE * SELU_ALPHA
    if name == "gelu":
        return GELU_MAX_ABS_DERIVATIVE
    if name == "silu":
        return SILU_MAX_ABS_DERIVATIVE
    if name == "sigmoid":
        return 0.25
    if name == "sin":
        return w
    if name == "triangle":
        return 2 * w / math.pi
    if name == "sawtooth":
        return w / math.pi
    if name in ACTIVATIONS:
        return 1.0  # identity, relu, softplus, tanh, hard_tanh
    raise ValueError(f"unknown activation {name!r}")
