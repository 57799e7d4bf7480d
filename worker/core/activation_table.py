"""The one activation table (torch-free): kind, parameters, formula, max|phi'| and He gain.

Everything about an activation except its torch code is here: the catalog lists it, the design
facts read the kinds from it (saturating, oscillating), and ``worker/compute/activations.py``
maps each name to its torch function and derivative and takes kind and max slope from here (it
refuses to import when the names differ). A worker test checks the max slope against the torch
derivative on a fine grid for every activation and parameter setting.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from worker.core.spec.base import ActivationName
from worker.core.spec.layers import ActivationLayer

ActivationKind = Literal["linear", "relu_like", "saturating", "oscillating"]
ActivationParameter = Literal["frequency", "negative_slope", "alpha"]

SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


LayerValue = Callable[[ActivationLayer], float]


def _fixed(value: float) -> LayerValue:
    """A value that does not depend on the layer's parameters."""
    return lambda _layer: value


_ONE = _fixed(1.0)
_HE = _fixed(math.sqrt(2.0))  # the ReLU gain, He et al. 2015


@dataclass(frozen=True)
class ActivationInfo:
    """One activation's vocabulary entry."""

    name: ActivationName
    kind: ActivationKind
    formula: str  # phi(z), with its parameters by name
    parameters: tuple[ActivationParameter, ...]  # fields of ActivationLayer it reads
    max_abs_derivative_formula: str
    max_slope: LayerValue  # max over z of |phi'(z)| at the layer's parameters
    kaiming_gain: LayerValue = _HE  # keeps E[phi'(z)^2] * gain^2 near 1 (He et al. 2015)


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
        ActivationInfo("identity", "linear", "z", (), "1", _ONE, _ONE),
        ActivationInfo("relu", "relu_like", "max(0, z)", (), "1", _ONE),
        ActivationInfo(
            "leaky_relu", "relu_like", "z if z > 0 else negative_slope * z",
            ("negative_slope",), "max(1, negative_slope)",
            lambda layer: max(1.0, layer.negative_slope),
            lambda layer: math.sqrt(2.0 / (1.0 + layer.negative_slope**2)),
        ),
        ActivationInfo(
            "elu", "relu_like", "z if z > 0 else alpha * (exp(z) - 1)", ("alpha",),
            "max(1, alpha)", lambda layer: max(1.0, layer.alpha),
        ),
        ActivationInfo(
            "selu", "relu_like", "scale * (z if z > 0 else alpha0 * (exp(z) - 1)), "
            "scale = 1.0507, alpha0 = 1.6733 (fixed)", (), "scale * alpha0 = 1.7581",
            _fixed(SELU_SCALE * SELU_ALPHA),
            _fixed(0.75),  # PyTorch's calculate_gain("selu") for self-normalizing nets
        ),
        ActivationInfo("gelu", "relu_like", "z * Phi(z) (exact, erf)", (),
                       "Phi(sqrt 2) + sqrt 2 * phi(sqrt 2) = 1.1289",
                       _fixed(GELU_MAX_ABS_DERIVATIVE)),
        ActivationInfo("silu", "relu_like", "z * sigmoid(z)", (), "1.0998 (at z = 2.3994)",
                       _fixed(SILU_MAX_ABS_DERIVATIVE)),
        ActivationInfo("softplus", "relu_like", "log(1 + exp(z))", (), "1", _ONE),
        ActivationInfo("tanh", "saturating", "tanh(z)", (), "1", _ONE, _fixed(5.0 / 3.0)),
        ActivationInfo("sigmoid", "saturating", "1 / (1 + exp(-z))", (), "1/4", _fixed(0.25),
                       _ONE),
        ActivationInfo("hard_tanh", "saturating", "clamp(z, -1, 1)", (), "1", _ONE),
        ActivationInfo(
            "sin", "oscillating", "sin(frequency * z)", ("frequency",), "frequency",
            lambda layer: layer.frequency, _ONE,
        ),
        ActivationInfo(
            "triangle", "oscillating",
            "triangle wave in [-1, 1] with sin's phase and period 2 pi / frequency",
            ("frequency",), "2 * frequency / pi", lambda layer: 2 * layer.frequency / math.pi,
            _ONE,
        ),
        ActivationInfo(
            "sawtooth", "oscillating",
            "sawtooth in [-1, 1): slope frequency / pi, drops by 2 every 2 pi / frequency",
            ("frequency",), "frequency / pi", lambda layer: layer.frequency / math.pi, _ONE,
        ),
    )
}


def info_of(layer: ActivationLayer) -> ActivationInfo:
    """The table entry of the activation ``layer`` names."""
    info = ACTIVATIONS.get(layer.name)
    if info is None:
        raise ValueError(f"unknown activation {layer.name!r}")
    return info


def max_abs_derivative(layer: ActivationLayer) -> float:
    """max over z of |phi'(z)| for the activation ``layer`` names, with its parameters."""
    return info_of(layer).max_slope(layer)


def kaiming_gain(layer: ActivationLayer | None) -> float:
    """The gain that keeps E[phi'(z)^2] * gain^2 near 1 for an activation (He et al. 2015);
    1 where no activation follows."""
    return 1.0 if layer is None else info_of(layer).kaiming_gain(layer)


def names_of_kind(kind: ActivationKind) -> frozenset[str]:
    """The activations of one kind (e.g. every saturating one)."""
    return frozenset(name for name, info in ACTIVATIONS.items() if info.kind == kind)
