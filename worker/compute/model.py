"""Spec -> ``nn.Module``: any design the spec describes, with the points the probes observe.

The network is a flat list of top-level layers and a linear head. "Block outputs" h_l, whose
gradients the gradient-flow probe measures, are the outputs of the top-level nonlinear stages:
activation, maxout, residual and recurrent layers (for the mlp family: one per hidden block).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from worker.compute.activations import Activation, Elementwise, get_activation
from worker.compute.layers import Maxout, Recurrent, Residual
from worker.compute.transformer import TRANSFORMER_LAYER_TYPES, build_transformer_layer
from worker.core.activation_table import kaiming_gain
from worker.core.spec import (
    ActivationLayer,
    Conv2dLayer,
    DropoutLayer,
    ExperimentSpec,
    FlattenLayer,
    InitSpec,
    Layer,
    LinearLayer,
    MaxoutLayer,
    NormLayer,
    PoolLayer,
    RecurrentLayer,
    ResidualLayer,
    analyze,
)
from worker.core.spec.shapes import projection_stride
from worker.core.spec.transformer_analysis import transformer_block_count

PROBED_TYPES = ("activation", "maxout", "residual", "rnn", "gru", "lstm", "self_attention",
                "transformer_block")


@dataclass(frozen=True)
class ObservedActivation:
    """An activation module somewhere in the net, and what the slope probe needs of it."""

    name: str
    module: Elementwise
    activation: Activation


class Net(nn.Module):
    """Top-level layers, then a linear head; knows which outputs the probes observe."""

    def __init__(
        self,
        layers: list[nn.Module],
        layer_names: list[str],
        probe_points: list[int],
        head: nn.Linear,
        activations: list[ObservedActivation],
        weight_names: dict[int, str],
    ) -> None:
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.layer_names = layer_names
        self.probe_points = probe_points
        self.head = head
        self.observed_activations = activations
        self._weight_names = weight_names  # id(module) -> spec-style name

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        out: Tensor = self.head(x)
        return out

    def probe_names(self) -> list[str]:
        return [self.layer_names[i] for i in self.probe_points]

    def probe_modules(self) -> list[nn.Module]:
        return [self.layers[i] for i in self.probe_points]

    def recurrent_layers(self) -> list[tuple[str, Recurrent]]:
        return [
            (self.layer_names[i], m) for i, m in enumerate(self.layers) if isinstance(m, Recurrent)
        ]

    def weight_layers(self) -> list[tuple[str, Tensor]]:
        """Every weight matrix or kernel (linear, conv, maxout, recurrent), input to output."""
        named: list[tuple[str, Tensor]] = []
        for module in self.modules():
            name = self._weight_names.get(id(module))
            if name is None:
                continue
            if isinstance(module, nn.Linear | nn.Conv2d):
                named.append((name, module.weight))
            elif isinstance(module, Recurrent):
                w_ih, w_hh, _, _ = module.parameters_l0()
                named.append((f"{name}.weight_ih", w_ih))
                named.append((f"{name}.weight_hh", w_hh))
        return named

    def weight_tensors(self) -> list[Tensor]:
        return [w for _, w in self.weight_layers()]


class _Builder:
    """Walks the normalized layers, building modules and initializing their weights."""

    def __init__(self, init: InitSpec) -> None:
        self.init = init
        self.activations: list[ObservedActivation] = []
        self.weight_names: dict[int, str] = {}  # id(module) -> name, for weight layers
        self.transformer_blocks = 0  # N of DeepNorm's constants

    def build_list(
        self, layers: list[Layer], shape: tuple[int, ...], prefix: str
    ) -> tuple[list[nn.Module], list[str], tuple[int, ...]]:
        modules, names = [], []
        for i, layer in enumerate(layers):
            name = f"{prefix}{i}.{layer.type}"
            feeds = _next_activation(layers, i)
            module, shape = self.build(layer, shape, name, feeds)
            self._name_weights(module, name)
            modules.append(module)
            names.append(name)
        return modules, names, shape

    def build(
        self, layer: Layer, shape: tuple[int, ...], name: str, feeds: ActivationLayer | None
    ) -> tuple[nn.Module, tuple[int, ...]]:
        """The module for one layer and its output shape (one branch per layer type)."""
        if isinstance(layer, LinearLayer):
            return self._linear(layer, shape, feeds)
        if isinstance(layer, Conv2dLayer):
            return self._conv(layer, shape, feeds)
        if isinstance(layer, PoolLayer):
            return _pool(layer, shape)
        if isinstance(layer, FlattenLayer):
            return nn.Flatten(), (math.prod(shape),)
        if isinstance(layer, NormLayer):
            return _norm(layer, shape), shape
        if isinstance(layer, DropoutLayer):
            return nn.Dropout(layer.p), shape
        if isinstance(layer, ActivationLayer):
            return self._activation(layer, name), shape
        if isinstance(layer, MaxoutLayer):
            module = Maxout(shape[-1], layer.out, layer.pieces)
            self.init_weight(module.linear, None)
            return module, (*shape[:-1], layer.out)
        if isinstance(layer, RecurrentLayer):
            return self._recurrent(layer, shape)
        if isinstance(layer, TRANSFORMER_LAYER_TYPES):
            return build_transformer_layer(self, layer, shape, name)
        assert isinstance(layer, ResidualLayer)
        return self._residual(layer, shape, name)

    def _linear(
        self, layer: LinearLayer, shape: tuple[int, ...], feeds: ActivationLayer | None
    ) -> tuple[nn.Module, tuple[int, ...]]:
        module = nn.Linear(shape[-1], layer.out, bias=layer.bias)
        self.init_weight(module, feeds)
        return module, (*shape[:-1], layer.out)

    def _conv(
        self, layer: Conv2dLayer, shape: tuple[int, ...], feeds: ActivationLayer | None
    ) -> tuple[nn.Module, tuple[int, ...]]:
        k, s, p = layer.kernel_size, layer.stride, layer.padding
        module = nn.Conv2d(shape[0], layer.out_channels, k, s, p, bias=layer.bias)
        self.init_weight(module, feeds)
        height, width = ((n + 2 * p - k) // s + 1 for n in shape[1:3])
        return module, (layer.out_channels, height, width)

    def _activation(self, layer: ActivationLayer, name: str) -> nn.Module:
        act = get_activation(layer)
        module = act.module()
        self.activations.append(ObservedActivation(name, module, act))
        return module

    def _recurrent(
        self, layer: RecurrentLayer, shape: tuple[int, ...]
    ) -> tuple[nn.Module, tuple[int, ...]]:
        module = Recurrent(
            layer.type, shape[-1], layer.hidden, layer.return_sequences, layer.nonlinearity
        )
        self.init_recurrent(module)
        out = (shape[0], layer.hidden) if layer.return_sequences else (layer.hidden,)
        return module, out

    def _residual(
        self, layer: ResidualLayer, shape: tuple[int, ...], name: str
    ) -> tuple[nn.Module, tuple[int, ...]]:
        """The body, and a projection (1x1 conv or linear) where it changes the shape."""
        body, _, res_out = self.build_list(layer.body, shape, f"{name}.body.")
        projection: nn.Module | None = None
        if res_out != shape:
            if len(shape) == 3:
                stride = projection_stride(shape, res_out)
                assert stride is not None  # analyze() refused the spec otherwise
                projection = nn.Conv2d(shape[0], res_out[0], 1, stride)
            else:
                projection = nn.Linear(shape[-1], res_out[-1])
            self.weight_names[id(projection)] = f"{name}.projection"
            self.init_weight(projection, None)
        return Residual(nn.Sequential(*body), projection), res_out

    def _name_weights(self, module: nn.Module, name: str) -> None:
        if isinstance(module, nn.Linear | nn.Conv2d | Recurrent):
            self.weight_names[id(module)] = name
        elif isinstance(module, Maxout):
            self.weight_names[id(module.linear)] = name

    def gain(self, feeds: ActivationLayer | None) -> float:
        if self.init.gain is not None:
            return self.init.gain
        return kaiming_gain(feeds) if self.init.scheme.startswith("kaiming") else 1.0

    @torch.no_grad()
    def init_tensor(self, w: Tensor, gain: float) -> None:
        scheme = self.init.scheme
        fan_in = w.shape[1] * (math.prod(w.shape[2:]) if w.dim() > 2 else 1)
        if scheme == "xavier_uniform":
            nn.init.xavier_uniform_(w, gain=gain)
        elif scheme == "xavier_normal":
            nn.init.xavier_normal_(w, gain=gain)
        elif scheme == "kaiming_uniform":
            bound = gain * math.sqrt(3.0 / fan_in)
            nn.init.uniform_(w, -bound, bound)
        elif scheme == "orthogonal":
            nn.init.orthogonal_(w, gain=gain)
        else:  # kaiming_normal and normal: N(0, gain^2 / fan_in)
            nn.init.normal_(w, 0.0, gain / math.sqrt(fan_in))

    @torch.no_grad()
    def init_bias(self, b: Tensor | None) -> None:
        if b is None:
            return
        if self.init.bias_std > 0:
            nn.init.normal_(b, 0.0, self.init.bias_std)
        elif self.init.scheme != "default":
            nn.init.zeros_(b)

    def init_weight(self, module: nn.Linear | nn.Conv2d, feeds: ActivationLayer | None) -> None:
        """Scheme-initialize one layer; ``default`` keeps PyTorch's (biases too, unless
        ``bias_std`` > 0)."""
        if self.init.scheme != "default":
            self.init_tensor(module.weight, self.gain(feeds))
        self.init_bias(module.bias)

    @torch.no_grad()
    def init_recurrent(self, module: Recurrent) -> None:
        """Each gate's input and recurrent matrices are initialized on their own (so an
        orthogonal W_hh is orthogonal per gate); then the LSTM forget bias, if asked."""
        w_ih, w_hh, b_ih, b_hh = module.parameters_l0()
        gates = {"rnn": 1, "gru": 3, "lstm": 4}[module.kind]
        act = ActivationLayer(name="relu") if module.nonlinearity == "relu" else None
        gain = self.gain(act if module.kind == "rnn" else None)
        if self.init.scheme != "default":
            for w in (w_ih, w_hh):
                for chunk in w.chunk(gates, dim=0):
                    self.init_tensor(chunk, gain)
        self.init_bias(b_ih)
        self.init_bias(b_hh)
        if module.kind == "lstm" and self.init.lstm_forget_bias is not None:
            h = module.hidden
            b_ih[h : 2 * h] = self.init.lstm_forget_bias
            b_hh[h : 2 * h] = 0.0


def _pool(layer: PoolLayer, shape: tuple[int, ...]) -> tuple[nn.Module, tuple[int, ...]]:
    k, s = layer.kernel_size, layer.stride or layer.kernel_size
    module = nn.MaxPool2d(k, s) if layer.type == "max_pool" else nn.AvgPool2d(k, s)
    return module, (shape[0], (shape[1] - k) // s + 1, (shape[2] - k) // s + 1)


def _norm(layer: NormLayer, shape: tuple[int, ...]) -> nn.Module:
    if layer.type == "batch_norm":
        return nn.BatchNorm2d(shape[0]) if len(shape) == 3 else nn.BatchNorm1d(shape[0])
    return nn.LayerNorm(list(shape) if len(shape) == 3 else shape[-1])


def _next_activation(layers: list[Layer], i: int) -> ActivationLayer | None:
    """The activation a weight layer feeds (for its kaiming gain): the next one before any
    other weight layer."""
    for layer in layers[i + 1 :]:
        if isinstance(layer, ActivationLayer):
            return layer
        if isinstance(layer, LinearLayer | Conv2dLayer | MaxoutLayer | RecurrentLayer):
            return None
    return None


def build_model(spec: ExperimentSpec) -> Net:
    """Build and initialize the model the spec describes (uses the global torch RNG)."""
    analysis = analyze(spec)
    builder = _Builder(spec.init)
    builder.transformer_blocks = transformer_block_count(analysis.layers)
    modules, names, shape = builder.build_list(analysis.layers, analysis.data.input_shape, "")
    head = nn.Linear(shape[-1], analysis.data.output_dim)
    builder.init_weight(head, None)
    probe_points = [i for i, layer in enumerate(analysis.layers) if layer.type in PROBED_TYPES]
    builder.weight_names[id(head)] = "head"
    return Net(modules, names, probe_points, head, builder.activations, builder.weight_names)
