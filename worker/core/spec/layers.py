"""Model specs: the explicit ``layers`` form and the family shorthands that compile to it.

A linear head to the task's output size is always appended after the last layer, so a design
describes the body; results echo the normalized layer list with the head.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, model_validator

from worker.core.spec.base import ActivationName, Normalization, StrictModel
from worker.core.spec.transformer import TransformerLayer, TransformerModel

MAX_DEPTH = 128
MAX_WIDTH = 8192


class ActivationLayer(StrictModel):
    """An elementwise nonlinearity. ``frequency`` shapes sin/triangle/sawtooth (higher = more
    jagged); ``negative_slope`` is leaky_relu's; ``alpha`` is elu's."""

    type: Literal["activation"] = "activation"
    name: ActivationName
    frequency: float = Field(1.0, gt=0, le=1000)
    negative_slope: float = Field(0.01, ge=0, le=1)
    alpha: float = Field(1.0, gt=0, le=10)


class LinearLayer(StrictModel):
    """Fully connected layer on the last dimension (vectors, or every step of a sequence)."""

    type: Literal["linear"] = "linear"
    out: int = Field(ge=1, le=MAX_WIDTH)
    bias: bool = True


class Conv2dLayer(StrictModel):
    """2-D convolution on images (channels, height, width)."""

    type: Literal["conv2d"] = "conv2d"
    out_channels: int = Field(ge=1, le=4096)
    kernel_size: int = Field(3, ge=1, le=15)
    stride: int = Field(1, ge=1, le=8)
    padding: int = Field(0, ge=0, le=7)
    bias: bool = True


class PoolLayer(StrictModel):
    """Max or average pooling on images; ``stride`` defaults to ``kernel_size``."""

    type: Literal["max_pool", "avg_pool"]
    kernel_size: int = Field(2, ge=1, le=8)
    stride: int | None = Field(None, ge=1, le=8)


class FlattenLayer(StrictModel):
    """Flatten everything but the batch dimension."""

    type: Literal["flatten"] = "flatten"


class NormLayer(StrictModel):
    """Batch norm (vectors, images) or layer norm (vectors, sequences, images)."""

    type: Literal["batch_norm", "layer_norm"]


class DropoutLayer(StrictModel):
    """Dropout with drop probability ``p`` (off during probes and evaluation)."""

    type: Literal["dropout"] = "dropout"
    p: float = Field(0.1, ge=0, lt=1)


class MaxoutLayer(StrictModel):
    """Maxout (Goodfellow et al. 2013): ``pieces`` linear maps to ``out`` units, max over pieces."""

    type: Literal["maxout"] = "maxout"
    out: int = Field(ge=1, le=MAX_WIDTH)
    pieces: int = Field(2, ge=2, le=16)


class RecurrentLayer(StrictModel):
    """Recurrent layer over a sequence (steps, features). Returns the last hidden state, or
    every step's when ``return_sequences``. ``nonlinearity`` applies to the vanilla rnn."""

    type: Literal["rnn", "gru", "lstm"]
    hidden: int = Field(ge=1, le=4096)
    return_sequences: bool = False
    nonlinearity: Literal["tanh", "relu"] = "tanh"


class ResidualLayer(StrictModel):
    """``h + body(h)``; when the body changes the shape, a learned projection (linear, or a
    1x1 convolution with stride for images) maps ``h`` to the body's output shape."""

    type: Literal["residual"] = "residual"
    body: list[Layer] = Field(min_length=1, max_length=64)


Layer = Annotated[
    Union[  # noqa: UP007 - a forward-referenced union needs Union
        LinearLayer,
        Conv2dLayer,
        PoolLayer,
        FlattenLayer,
        ActivationLayer,
        NormLayer,
        DropoutLayer,
        MaxoutLayer,
        RecurrentLayer,
        ResidualLayer,
        TransformerLayer,  # its members join this union (typing flattens nested unions)
    ],
    Field(discriminator="type"),
]
ResidualLayer.model_rebuild()


class LayersModel(StrictModel):
    """An explicit layer list (the head to the task's output is appended)."""

    layers: list[Layer] = Field(min_length=1, max_length=256)


class FamilyModel(StrictModel):
    """A family shorthand, compiled to layers (see :func:`compile_family`).

    - ``mlp``: ``depth`` x [linear(width), norm, activation, dropout]; with ``residual`` every
      block after the first is ``h + block(h)``.
    - ``resmlp``: linear(width) stem, then ``depth`` residual blocks [norm, linear, activation].
    - ``cnn`` (image data): ``depth`` x [conv3x3(width), norm, activation], a 2x2 max pool after
      every second block while the image is larger than 2x2, then flatten; ``residual`` wraps
      each block after the first.
    - ``rnn`` / ``gru`` / ``lstm`` (sequence data): ``depth`` stacked recurrent layers of
      ``width`` units; the last returns every step only when the task predicts every step.
    """

    family: Literal["mlp", "resmlp", "cnn", "rnn", "gru", "lstm"] = "mlp"
    depth: int = Field(description="Number of hidden blocks.", ge=1, le=MAX_DEPTH)
    width: int = Field(description="Units (or channels) per block.", ge=1, le=MAX_WIDTH)
    activation: ActivationName = "relu"
    frequency: float = Field(1.0, description="Frequency of sin/triangle/sawtooth.", gt=0, le=1000)
    leaky_relu_slope: float = Field(0.01, description="Negative slope of leaky_relu.", ge=0, le=1)
    residual: bool = Field(False, description="Identity skip connections (mlp, cnn).")
    normalization: Normalization = "none"
    dropout: float = Field(0.0, ge=0, lt=1)
    rnn_nonlinearity: Literal["tanh", "relu"] = "tanh"

    @model_validator(mode="after")
    def _fields_for_family(self) -> FamilyModel:
        recurrent = self.family in ("rnn", "gru", "lstm")
        if recurrent and (self.residual or self.normalization != "none" or self.dropout > 0):
            raise ValueError(
                "residual, normalization and dropout are not options of recurrent families"
            )
        if recurrent and self.activation != "relu":
            raise ValueError(
                "recurrent families use their gates' nonlinearities; set rnn_nonlinearity "
                "for the vanilla rnn instead of activation"
            )
        return self

    def activation_layer(self) -> ActivationLayer:
        return ActivationLayer(
            name=self.activation,
            frequency=self.frequency,
            negative_slope=self.leaky_relu_slope,
        )


ModelSpec = FamilyModel | LayersModel | TransformerModel


def compile_family(model: FamilyModel, image_hw: int | None, per_step: bool) -> list[Layer]:
    """The explicit layers a family shorthand stands for.

    ``image_hw`` is the input image's side (cnn pooling stops at 2x2); ``per_step`` says the
    task predicts at every sequence step (the last recurrent layer returns the sequence).
    """
    act = model.activation_layer()
    norm: list[Layer] = []
    if model.normalization != "none":
        norm = [NormLayer(type="batch_norm" if model.normalization == "batch" else "layer_norm")]
    drop: list[Layer] = [DropoutLayer(p=model.dropout)] if model.dropout > 0 else []
    layers: list[Layer] = []
    if model.family == "mlp":
        for i in range(model.depth):
            body: list[Layer] = [LinearLayer(out=model.width), *norm, act, *drop]
            layers += [ResidualLayer(body=body)] if model.residual and i > 0 else body
    elif model.family == "resmlp":
        layers.append(LinearLayer(out=model.width))
        for _ in range(model.depth):
            layers.append(ResidualLayer(body=[*norm, LinearLayer(out=model.width), act, *drop]))
    elif model.family == "cnn":
        side = image_hw or 0
        for i in range(model.depth):
            body = [Conv2dLayer(out_channels=model.width, kernel_size=3, padding=1), *norm, act]
            layers += [ResidualLayer(body=body)] if model.residual and i > 0 else body
            if i % 2 == 1 and side > 2:
                layers.append(PoolLayer(type="max_pool", kernel_size=2))
                side //= 2
        layers.append(FlattenLayer())
        layers += drop
    else:
        for i in range(model.depth):
            last = i == model.depth - 1
            layers.append(
                RecurrentLayer(
                    type=model.family,
                    hidden=model.width,
                    return_sequences=per_step or not last,
                    nonlinearity=model.rnn_nonlinearity,
                )
            )
    return layers
