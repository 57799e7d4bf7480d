"""Spec -> ``nn.Module``: the MLP family, with the blocks the diagnostics instrument."""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import Tensor, nn

from worker.activations import Activation, get_activation
from worker.spec import DataShape, ExperimentSpec, InitSpec


class HiddenBlock(nn.Module):
    """``linear -> normalization -> activation``, optionally ``h + block(h)``.

    The diagnostics read the activation's input (the pre-activation ``z``) and the block's
    output ``h_l``; both are observed with forward hooks only while a probe runs.
    """

    def __init__(
        self, n_in: int, n_out: int, activation: Activation, normalization: str, residual: bool
    ) -> None:
        super().__init__()
        self.linear = nn.Linear(n_in, n_out)
        self.norm: nn.Module
        if normalization == "batch":
            self.norm = nn.BatchNorm1d(n_out)
        elif normalization == "layer":
            self.norm = nn.LayerNorm(n_out)
        else:
            self.norm = nn.Identity()
        self.act = activation.module()
        self.residual = residual and n_in == n_out

    def forward(self, h: Tensor) -> Tensor:
        out: Tensor = self.act(self.norm(self.linear(h)))
        return h + out if self.residual else out


class MLP(nn.Module):
    """``depth`` hidden blocks and a linear head."""

    def __init__(self, blocks: list[HiddenBlock], head: nn.Linear, activation: Activation) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.head = head
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        for block in self.blocks:
            x = block(x)
        out: Tensor = self.head(x)
        return out

    def hidden_blocks(self) -> list[HiddenBlock]:
        """The hidden blocks, input to output (typed view of ``blocks``)."""
        return [cast(HiddenBlock, b) for b in self.blocks]

    def linear_layers(self) -> list[tuple[str, nn.Linear]]:
        """Every linear layer from input to output, with a stable display name."""
        named = [(f"block{i + 1}.linear", b.linear) for i, b in enumerate(self.hidden_blocks())]
        return [*named, ("head", self.head)]


def build_model(spec: ExperimentSpec, shape: DataShape) -> MLP:
    """Build and initialize the model the spec describes (uses the global torch RNG)."""
    m = spec.model
    activation = get_activation(m.activation, m.leaky_relu_slope)
    blocks = [
        HiddenBlock(
            shape.input_dim if i == 0 else m.width,
            m.width,
            activation,
            m.normalization,
            residual=m.residual and i > 0,
        )
        for i in range(m.depth)
    ]
    model = MLP(blocks, nn.Linear(m.width, shape.output_dim), activation)
    for _, layer in model.linear_layers():
        init_linear(layer, spec.init, m.activation, m.leaky_relu_slope)
    return model


def init_gain(spec: InitSpec, activation: str, leaky_relu_slope: float) -> float:
    """The gain a scheme uses: the spec's, or the scheme's default for the activation."""
    if spec.gain is not None:
        return spec.gain
    if spec.scheme.startswith("kaiming"):
        if activation == "leaky_relu":
            return math.sqrt(2.0 / (1.0 + leaky_relu_slope**2))
        if activation in ("relu", "gelu"):
            return math.sqrt(2.0)
        if activation == "tanh":
            return 5.0 / 3.0
    return 1.0


@torch.no_grad()
def init_linear(layer: nn.Linear, spec: InitSpec, activation: str, leaky_relu_slope: float) -> None:
    """Initialize one linear layer in place according to ``spec``.

    ``default`` keeps PyTorch's initialization (weights and biases) unless ``bias_std`` > 0;
    every other scheme draws biases from N(0, bias_std^2) (zeros when bias_std = 0).
    """
    w = layer.weight
    fan_in = w.shape[1]
    gain = init_gain(spec, activation, leaky_relu_slope)
    if spec.scheme == "default":
        if spec.bias_std > 0:
            nn.init.normal_(layer.bias, 0.0, spec.bias_std)
        return
    if spec.scheme == "xavier_uniform":
        nn.init.xavier_uniform_(w, gain=gain)
    elif spec.scheme == "xavier_normal":
        nn.init.xavier_normal_(w, gain=gain)
    elif spec.scheme == "kaiming_uniform":
        bound = gain * math.sqrt(3.0 / fan_in)
        nn.init.uniform_(w, -bound, bound)
    else:  # kaiming_normal and normal: N(0, gain^2 / fan_in)
        nn.init.normal_(w, 0.0, gain / math.sqrt(fan_in))
    if spec.bias_std > 0:
        nn.init.normal_(layer.bias, 0.0, spec.bias_std)
    else:
        nn.init.zeros_(layer.bias)


def describe_layers(spec: ExperimentSpec, shape: DataShape) -> list[dict[str, object]]:
    """The normalized layer list the family shorthand compiles to (echoed in results)."""
    m = spec.model
    layers: list[dict[str, object]] = []
    for i in range(m.depth):
        n_in = shape.input_dim if i == 0 else m.width
        body: list[dict[str, object]] = [{"type": "linear", "in": n_in, "out": m.width}]
        if m.normalization != "none":
            body.append({"type": f"{m.normalization}_norm", "features": m.width})
        body.append({"type": "activation", "name": m.activation})
        if m.residual and i > 0:
            layers.append({"type": "residual", "body": body})
        else:
            layers.extend(body)
    layers.append({"type": "linear", "in": m.width, "out": shape.output_dim})
    return layers
