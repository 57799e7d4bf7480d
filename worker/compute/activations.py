"""Activation functions with their derivatives in closed form.

The linearity diagnostics need phi'(z) for every pre-activation entry and max|phi'| to say
what "significant slope" means for each nonlinearity; the mean-field theory needs phi itself.
``sin``, ``triangle`` and ``sawtooth`` are jagged, non-monotonic (or discontinuous) functions
with a ``frequency``: the kind of design that makes local gradients a poor guide.

Only the torch code lives here; what each activation is (kind, parameters, max slope, He gain)
is the core table ``worker/core/activation_table.py``, and the two must name the same
activations (checked at import).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worker.core.activation_table import (
    ACTIVATIONS,
    SELU_ALPHA,
    SELU_SCALE,
    ActivationKind,
    info_of,
)
from worker.core.spec import ActivationLayer

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
Fn = Callable[[Tensor], Tensor]


def _sigmoid_derivative(z: Tensor) -> Tensor:
    s = torch.sigmoid(z)
    return s * (1.0 - s)


def _gelu_derivative(z: Tensor) -> Tensor:
    cdf = 0.5 * (1.0 + torch.erf(z / _SQRT2))
    return cdf + z * _INV_SQRT_2PI * torch.exp(-0.5 * z * z)


def _silu_derivative(z: Tensor) -> Tensor:
    s = torch.sigmoid(z)
    return s * (1.0 + z * (1.0 - s))


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


def _relu_step(z: Tensor) -> Tensor:
    """1 where z > 0, else 0 (NaN too): ``(z > 0).to(z.dtype)``'s values in a fifth of its
    time on the CPU, where the bool tensor and its cast run unvectorized."""
    return torch.sign(z).clamp_(min=0)


def _leaky_relu(layer: ActivationLayer) -> tuple[Fn, Fn]:
    a = layer.negative_slope
    return (
        lambda z: F.leaky_relu(z, a),
        lambda z: torch.where(z > 0, 1.0, a).to(z.dtype),
    )


def _elu(layer: ActivationLayer) -> tuple[Fn, Fn]:
    al = layer.alpha
    return (
        lambda z: F.elu(z, al),
        lambda z: torch.where(z > 0, torch.ones_like(z), al * torch.exp(z)),
    )


def _selu_derivative(z: Tensor) -> Tensor:
    return SELU_SCALE * torch.where(z > 0, torch.ones_like(z), SELU_ALPHA * torch.exp(z))


def _sin(layer: ActivationLayer) -> tuple[Fn, Fn]:
    w = layer.frequency
    return (lambda z: torch.sin(w * z), lambda z: w * torch.cos(w * z))


def _sawtooth_pair(layer: ActivationLayer) -> tuple[Fn, Fn]:
    w = layer.frequency
    return (_sawtooth(w), lambda z: torch.full_like(z, w / math.pi))


def _fixed(fn: Fn, derivative: Fn) -> Callable[[ActivationLayer], tuple[Fn, Fn]]:
    """A function pair that reads none of the layer's parameters."""
    return lambda _layer: (fn, derivative)


#: name -> (phi, phi') at a layer's parameters.
TORCH_FUNCTIONS: dict[str, Callable[[ActivationLayer], tuple[Fn, Fn]]] = {
    "identity": _fixed(lambda z: z, torch.ones_like),
    "relu": _fixed(F.relu, _relu_step),
    "leaky_relu": _leaky_relu,
    "elu": _elu,
    "selu": _fixed(F.selu, _selu_derivative),
    "gelu": _fixed(F.gelu, _gelu_derivative),
    "silu": _fixed(F.silu, _silu_derivative),
    "softplus": _fixed(F.softplus, torch.sigmoid),
    "tanh": _fixed(torch.tanh, lambda z: 1.0 - torch.tanh(z) ** 2),
    "sigmoid": _fixed(torch.sigmoid, _sigmoid_derivative),
    "hard_tanh": _fixed(F.hardtanh, lambda z: ((z > -1) & (z < 1)).to(z.dtype)),
    "sin": _sin,
    "triangle": lambda layer: (_triangle(layer.frequency), _triangle_derivative(layer.frequency)),
    "sawtooth": _sawtooth_pair,
}
if set(TORCH_FUNCTIONS) != set(ACTIVATIONS):
    raise RuntimeError(
        "worker/compute/activations.py and worker/core/activation_table.py name different "
        f"activations: {sorted(set(TORCH_FUNCTIONS) ^ set(ACTIVATIONS))}"
    )


def get_activation(spec: ActivationLayer) -> Activation:
    """The activation a layer spec names, with its parameters applied."""
    info = info_of(spec)
    fn, derivative = TORCH_FUNCTIONS[spec.name](spec)
    return Activation(spec.name, info.kind, fn, derivative, info.max_slope(spec))
