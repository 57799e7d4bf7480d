"""Activation functions with their derivatives in closed form.

The linearity diagnostics need phi'(z) for every pre-activation entry, and max|phi'| to say
what "significant slope" means for each nonlinearity; the mean-field theory needs phi itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

from worker.spec import ActivationName

ActivationKind = Literal["linear", "relu_like", "saturating"]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def _gelu_derivative(z: Tensor) -> Tensor:
    cdf = 0.5 * (1.0 + torch.erf(z / _SQRT2))
    pdf = _INV_SQRT_2PI * torch.exp(-0.5 * z * z)
    return cdf + z * pdf


def _gelu_max_derivative() -> float:
    # d/dz [Phi(z) + z phi(z)] = phi(z) (2 - z^2) = 0  at z = sqrt(2).
    z = _SQRT2
    return 0.5 * (1.0 + math.erf(z / _SQRT2)) + z * _INV_SQRT_2PI * math.exp(-0.5 * z * z)


@dataclass(frozen=True)
class Activation:
    """One elementwise nonlinearity: module factory, derivative, and its largest slope."""

    name: str
    kind: ActivationKind
    module: Callable[[], nn.Module]
    derivative: Callable[[Tensor], Tensor]
    max_abs_derivative: float


def get_activation(name: ActivationName, leaky_relu_slope: float = 0.01) -> Activation:
    """The activation called ``name`` (``leaky_relu_slope`` is used by leaky_relu only)."""
    if name == "identity":
        return Activation(name, "linear", nn.Identity, torch.ones_like, 1.0)
    if name == "relu":
        return Activation(name, "relu_like", nn.ReLU, lambda z: (z > 0).to(z.dtype), 1.0)
    if name == "leaky_relu":
        a = leaky_relu_slope
        return Activation(
            name,
            "relu_like",
            lambda: nn.LeakyReLU(a),
            lambda z: torch.where(z > 0, torch.ones_like(z), torch.full_like(z, a)),
            max(1.0, a),
        )
    if name == "tanh":
        return Activation(name, "saturating", nn.Tanh, lambda z: 1.0 - torch.tanh(z) ** 2, 1.0)
    if name == "sigmoid":

        def sigmoid_derivative(z: Tensor) -> Tensor:
            s = torch.sigmoid(z)
            return s * (1.0 - s)

        return Activation(name, "saturating", nn.Sigmoid, sigmoid_derivative, 0.25)
    if name == "gelu":
        return Activation(name, "relu_like", nn.GELU, _gelu_derivative, _gelu_max_derivative())
    raise ValueError(f"unknown activation {name!r}")
