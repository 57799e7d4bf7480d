"""Activation functions with their derivatives in closed form.

The linearity diagnostics need phi'(z) for every pre-activation entry and max|phi'| to say
what "significant slope" means for each nonlinearity; the mean-field theory needs phi itself.
``sin``, ``triangle`` and ``sawtooth`` are jagged, non-monotonic (or discontinuous) functions
with a ``frequency``: the kind of design that makes local gradients a poor guide.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worker.core.spec import ActivationLayer

ActivationKind = Literal["linear", "relu_like", "saturating", "oscillating"]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
SELU_SCALE = 1.0507009873554804934193349852946
SELU_ALPHA = 1.6732632423543772848170429916717


def _sigmoid_derivative(z: Tensor) -> Tensor:
    s = torch.sigmoid(z)
    return s * (1.0 - s)


def _gelu_derivative(z: Tensor) -> Tensor:
    cdf = 0.5 * (1.0 + torch.erf(z / _SQRT2))
    return cdf + z * _INV_SQRT_2PI * torch.exp(-0.5 * z * z)


def _silu_derivative(z: Tensor) -> Tensor:
    s = torch.sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


def _max_on_grid(derivative: Callable[[Tensor], Tensor]) -> float:
    """max |phi'| of a smooth derivative, on a fine grid (exact to ~1e-9 for these shapes)."""
    z = torch.linspace(-10.0, 10.0, 2_000_001, dtype=torch.float64)
    return float(derivative(z).abs().max())


def _triangle(w: float) -> Callable[[Tensor], Tensor]:
    """Triangle wave with sin's phase: 0 at 0, +-1 at the peaks, slope +-2w/pi."""

    def f(z: Tensor) -> Tensor:
        t = w * z / (2 * math.pi) + 0.25
        return 1.0 - 4.0 * (t - torch.floor(t) - 0.5).abs()

    return f


def _triangle_derivative(w: float) -> Callable[[Tensor], Tensor]:
    def d(z: Tensor) -> Tensor:
        t = w * z / (2 * math.pi) + 0.25
        return (2 * w / math.pi) * torch.sign(0.5 - (t - torch.floor(t)))

    return d


def _sawtooth(w: float) -> Callable[[Tensor], Tensor]:
    """Sawtooth in [-1, 1): rises with slope w/pi, drops by 2 every 2*pi/w."""

    def f(z: Tensor) -> Tensor:
        t = w * z / (2 * math.pi) + 0.5
        return 2.0 * (t - torch.floor(t)) - 1.0

    return f


class Elementwise(nn.Module):
    """An activation layer; the diagnostics hook its input (the pre-activation)."""

    def __init__(self, fn: Callable[[Tensor], Tensor], name: str) -> None:
        super().__init__()
        self.fn = fn
        self.name = name

    def forward(self, z: Tensor) -> Tensor:
        return self.fn(z)

    def extra_repr(self) -> str:
        return self.name


@dataclass(frozen=True)
class Activation:
    """One elementwise nonlinearity: function, derivative, and its largest slope."""

    name: str
    kind: ActivationKind
    fn: Callable[[Tensor], Tensor]
    derivative: Callable[[Tensor], Tensor]
    max_abs_derivative: float

    def module(self) -> Elementwise:
        return Elementwise(self.fn, self.name)


_GELU_MAX = _max_on_grid(_gelu_derivative)
_SILU_MAX = _max_on_grid(_silu_derivative)


def get_activation(spec: ActivationLayer) -> Activation:  # noqa: C901 - a flat table
    """The activation a layer spec names, with its parameters applied."""
    name, w = spec.name, spec.frequency
    if name == "identity":
        return Activation(name, "linear", lambda z: z, torch.ones_like, 1.0)
    if name == "relu":
        return Activation(name, "relu_like", F.relu, lambda z: (z > 0).to(z.dtype), 1.0)
    if name == "leaky_relu":
        a = spec.negative_slope
        return Activation(
            name,
            "relu_like",
            lambda z: F.leaky_relu(z, a),
            lambda z: torch.where(z > 0, 1.0, a).to(z.dtype),
            max(1.0, a),
        )
    if name == "elu":
        al = spec.alpha
        return Activation(
            name,
            "relu_like",
            lambda z: F.elu(z, al),
            lambda z: torch.where(z > 0, torch.ones_like(z), al * torch.exp(z)),
            max(1.0, al),
        )
    if name == "selu":
        return Activation(
            name,
            "relu_like",
            F.selu,
            lambda z: (
                SELU_SCALE * torch.where(z > 0, torch.ones_like(z), SELU_ALPHA * torch.exp(z))
            ),
            SELU_SCALE * SELU_ALPHA,
        )
    if name == "gelu":
        return Activation(name, "relu_like", F.gelu, _gelu_derivative, _GELU_MAX)
    if name == "silu":
        return Activation(name, "relu_like", F.silu, _silu_derivative, _SILU_MAX)
    if name == "softplus":
        return Activation(name, "relu_like", F.softplus, torch.sigmoid, 1.0)
    if name == "tanh":
        return Activation(name, "saturating", torch.tanh, lambda z: 1.0 - torch.tanh(z) ** 2, 1.0)
    if name == "sigmoid":
        return Activation(name, "saturating", torch.sigmoid, _sigmoid_derivative, 0.25)
    if name == "hard_tanh":
        return Activation(
            name, "saturating", F.hardtanh, lambda z: ((z > -1) & (z < 1)).to(z.dtype), 1.0
        )
    if name == "sin":
        return Activation(
            name, "oscillating", lambda z: torch.sin(w * z), lambda z: w * torch.cos(w * z), w
        )
    if name == "triangle":
        return Activation(
            name, "oscillating", _triangle(w), _triangle_derivative(w), 2 * w / math.pi
        )
    if name == "sawtooth":
        return Activation(
            name,
            "oscillating",
            _sawtooth(w),
            lambda z: torch.full_like(z, w / math.pi),
            w / math.pi,
        )
    raise ValueError(f"unknown activation {name!r}")


def kaiming_gain(spec: ActivationLayer | None) -> float:
    """The gain that keeps E[phi'(z)^2] * gain^2 near 1 for an activation (He et al. 2015)."""
    if spec is None or spec.name in ("identity", "sigmoid", "sin", "triangle", "sawtooth"):
        return 1.0
    if spec.name == "leaky_relu":
        return math.sqrt(2.0 / (1.0 + spec.negative_slope**2))
    if spec.name == "tanh":
        return 5.0 / 3.0
    if spec.name == "selu":
        return 0.75  # PyTorch's calculate_gain("selu") for self-normalizing nets
    return math.sqrt(2.0)
