"""Shape inference, parameter count, FLOPs and memory of a spec, without torch.

:func:`analyze` walks the normalized layer list from the data's input shape and raises
:class:`ShapeError` with the location of the first layer that cannot take its input, so a
bad design is a 422 at submission, never a torch error in the worker.
Shapes exclude the batch: (features,), (steps, features) or (channels, height, width).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ValidationError

from worker.core.spec.data import DataShape, data_shape
from worker.core.spec.experiment import ExperimentSpec
from worker.core.spec.layers import (
    ActivationLayer,
    Conv2dLayer,
    DropoutLayer,
    FamilyModel,
    FlattenLayer,
    Layer,
    LinearLayer,
    MaxoutLayer,
    NormLayer,
    PoolLayer,
    RecurrentLayer,
    ResidualLayer,
    compile_family,
)
from worker.core.spec.transformer import TransformerModel
from worker.core.spec.transformer_analysis import (
    TRANSFORMER_SHAPE_RULES,
    compile_transformer,
    look_ahead,
)

Shape = tuple[int, ...]
Loc = tuple[str | int, ...]
GATES = {"rnn": 1, "gru": 3, "lstm": 4}
InputKind = Literal["vector", "sequence", "image"]
#: Rank of one example (batch excluded) of each kind of input.
INPUT_RANK: dict[InputKind, int] = {"vector": 1, "sequence": 2, "image": 3}
#: The input each family shorthand takes.
FAMILY_INPUT: dict[str, InputKind] = {
    "mlp": "vector", "resmlp": "vector", "cnn": "image",
    "rnn": "sequence", "gru": "sequence", "lstm": "sequence", "transformer": "sequence",
}
#: The family shorthands (each compiles to a layer list).
FAMILY_FORMS = (FamilyModel, TransformerModel)


class ShapeError(ValueError):
    """A layer cannot take the shape it receives; ``loc`` is its path in the spec."""

    def __init__(self, loc: Loc, message: str) -> None:
        super().__init__(message)
        self.loc = loc
        self.message = message


@dataclass
class Counts:
    """Per-example totals accumulated while walking the layers."""

    parameters: int = 0
    flops: int = 0  # multiply-adds x 2 of one forward pass, per example
    activations: int = 0  # floats stored for the backward pass, per example


@dataclass(frozen=True)
class Analysis:
    """What a spec compiles to and what it costs."""

    data: DataShape
    layers: list[Layer]  # the body, normalized (family compiled)
    head: LinearLayer
    output_shape: Shape
    parameters: int
    flops_per_example: int
    activation_floats_per_example: int
    layer_shapes: list[dict[str, object]] = field(default_factory=list)

    def flops_per_step(self, batch: int) -> int:
        """Forward, backward (about twice the forward) and update, for one batch."""
        return 3 * self.flops_per_example * batch + 4 * self.parameters


def projection_stride(shape: Shape, out: Shape) -> int | None:
    """The stride of a 1x1 convolution mapping image ``shape`` to ``out``'s height and width
    (a 1x1 kernel with stride s gives ceil(side / s)), or None when no stride does."""
    for stride in range(1, shape[1] + 1):
        if -(-shape[1] // stride) == out[1] and -(-shape[2] // stride) == out[2]:
            return stride
    return None


def body_layers(spec: ExperimentSpec, shape: DataShape) -> list[Layer]:
    """The spec's layer list (family shorthands compiled)."""
    model = spec.model
    if isinstance(model, TransformerModel):
        return compile_transformer(model, shape.per_step)
    if isinstance(model, FamilyModel):
        image_hw = shape.input_shape[1] if len(shape.input_shape) == 3 else None
        return compile_family(model, image_hw, shape.per_step)
    return list(model.layers)


def analyze(spec: ExperimentSpec) -> Analysis:
    """Infer every layer's shape and the model's cost; :class:`ShapeError` if one can't.

    Layers built here from other fields (the head from the data, a family's blocks) are
    validated like submitted ones; should one still be refused, that is a :class:`ShapeError`
    naming the data or the model, never an unhandled ``ValidationError`` (a 500).
    """
    try:
        return _analyze(spec)
    except ValidationError as exc:
        loc: Loc = ("model",) if isinstance(spec.model, FAMILY_FORMS) else ("data",)
        first = exc.errors()[0]
        raise ShapeError(loc, f"the design implies an invalid {exc.title}: {first['msg']} "
                         f"({'.'.join(str(p) for p in first['loc'])})") from exc


def _analyze(spec: ExperimentSpec) -> Analysis:
    shape = data_shape(spec.data)
    family = isinstance(spec.model, FAMILY_FORMS)
    if family:
        _check_family_input(spec, shape)
    layers = body_layers(spec, shape)
    counts = Counts()
    described: list[dict[str, object]] = []
    base: Loc = ("model",) if family else ("model", "layers")
    out = _walk(layers, shape.input_shape, base, counts, described, family)
    head = LinearLayer(out=shape.output_dim)
    head_loc: Loc = ("model",) if family else ("model", "layers", len(layers) - 1)
    if shape.per_step:
        if len(out) != 2:
            raise ShapeError(
                head_loc,
                f"the task predicts every step, so the model must end with a sequence "
                f"(steps, features), got {out}; use return_sequences on the last recurrent layer",
            )
    elif len(out) != 1:
        hint = (
            "add a flatten layer"
            if len(out) == 3
            else ("set return_sequences=false on the last recurrent layer")
        )
        raise ShapeError(
            head_loc, f"the head needs a vector, the body ends with shape {out}: {hint}"
        )
    final = _apply(head, out, ("model", "head"), counts, described, family)
    _check_training(spec, shape, layers)
    _check_causal(spec, shape, layers)
    return Analysis(
        data=shape,
        layers=layers,
        head=head,
        output_shape=final,
        parameters=counts.parameters,
        flops_per_example=counts.flops,
        activation_floats_per_example=counts.activations,
        layer_shapes=described,
    )


def _check_family_input(spec: ExperimentSpec, shape: DataShape) -> None:
    model = spec.model
    assert isinstance(model, FAMILY_FORMS)
    rank = len(shape.input_shape)
    needs = FAMILY_INPUT[model.family]
    if rank != INPUT_RANK[needs]:
        raise ShapeError(
            ("model", "family"),
            f"family {model.family!r} needs {needs} data, but data {spec.data.kind!r} gives "
            f"examples of shape {shape.input_shape}",
        )


def _check_training(spec: ExperimentSpec, shape: DataShape, layers: list[Layer]) -> None:
    """Training choices that the data or the layers rule out (torch would fail mid-run)."""
    if spec.training.loss == "cross_entropy" and shape.task == "regression":
        raise ShapeError(
            ("training", "loss"),
            f"cross_entropy needs class ids, but data {spec.data.kind!r} is a regression task; "
            "use 'mse' or 'auto'",
        )
    if min(spec.training.batch_size, shape.n_train) < 2 and _has_batch_norm(layers):
        raise ShapeError(
            ("training", "batch_size"),
            "batch norm needs at least 2 examples per batch to estimate batch statistics",
        )


def _check_causal(spec: ExperimentSpec, shape: DataShape, layers: list[Layer]) -> None:
    """On a causal task the next input is the target: attention must not look ahead."""
    family = isinstance(spec.model, FAMILY_FORMS)
    seen = look_ahead(layers, ("model",) if family else ("model", "layers"), family)
    if shape.causal and seen is not None:
        raise ShapeError(("model", "causal") if family else seen[0], seen[1])


def _has_batch_norm(layers: list[Layer]) -> bool:
    return any(
        layer.type == "batch_norm"
        or (isinstance(layer, ResidualLayer) and _has_batch_norm(layer.body))
        for layer in layers
    )


def _walk(
    layers: list[Layer],
    shape: Shape,
    base: Loc,
    counts: Counts,
    described: list[dict[str, object]],
    family: bool,
) -> Shape:
    for i, layer in enumerate(layers):
        shape = _apply(layer, shape, base if family else (*base, i), counts, described, family)
    return shape


Fail = Callable[[str], "ShapeError"]  # builds the error naming the layer


def _linear(layer: LinearLayer, shape: Shape, counts: Counts, fail: Fail) -> Shape:
    if len(shape) == 3:
        raise fail(f"needs a vector or a sequence, got an image {shape}; add flatten first")
    steps = shape[0] if len(shape) == 2 else 1
    n_in = shape[-1]
    counts.parameters += n_in * layer.out + (layer.out if layer.bias else 0)
    counts.flops += 2 * n_in * layer.out * steps
    return (*shape[:-1], layer.out)


def _conv2d(layer: Conv2dLayer, shape: Shape, counts: Counts, fail: Fail) -> Shape:
    if len(shape) != 3:
        raise fail(f"needs an image (channels, height, width), got {shape}")
    c, h, w = shape
    k, s, p = layer.kernel_size, layer.stride, layer.padding
    ho, wo = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    if ho < 1 or wo < 1:
        raise fail(f"kernel {k} with padding {p} does not fit a {h}x{w} image")
    counts.parameters += c * layer.out_channels * k * k + (layer.out_channels if layer.bias else 0)
    counts.flops += 2 * c * k * k * layer.out_channels * ho * wo
    return (layer.out_channels, ho, wo)


def _pool(layer: PoolLayer, shape: Shape, counts: Counts, fail: Fail) -> Shape:
    if len(shape) != 3:
        raise fail(f"needs an image (channels, height, width), got {shape}")
    c, h, w = shape
    k, s = layer.kernel_size, layer.stride or layer.kernel_size
    ho, wo = (h - k) // s + 1, (w - k) // s + 1
    if ho < 1 or wo < 1:
        raise fail(f"kernel {k} does not fit a {h}x{w} image")
    counts.flops += c * ho * wo * k * k
    return (c, ho, wo)


def _flatten(_layer: FlattenLayer, shape: Shape, _counts: Counts, _fail: Fail) -> Shape:
    return (math.prod(shape),)


def _norm(layer: NormLayer, shape: Shape, counts: Counts, fail: Fail) -> Shape:
    if layer.type == "batch_norm" and len(shape) == 2:
        raise fail("batch norm over sequences is not supported; use layer_norm")
    numel = math.prod(shape)
    if layer.type == "batch_norm" and len(shape) == 3:
        features = shape[0]
    else:
        features = numel if len(shape) == 3 else shape[-1]
    counts.parameters += 2 * features
    counts.flops += 4 * numel
    return shape


def _elementwise(_layer: Layer, shape: Shape, counts: Counts, _fail: Fail) -> Shape:
    counts.flops += math.prod(shape)
    return shape


def _maxout(layer: MaxoutLayer, shape: Shape, counts: Counts, fail: Fail) -> Shape:
    if len(shape) == 3:
        raise fail(f"needs a vector or a sequence, got an image {shape}; add flatten first")
    steps = shape[0] if len(shape) == 2 else 1
    n_in = shape[-1]
    counts.parameters += (n_in + 1) * layer.out * layer.pieces
    counts.flops += 2 * n_in * layer.out * layer.pieces * steps
    return (*shape[:-1], layer.out)


def _recurrent(layer: RecurrentLayer, shape: Shape, counts: Counts, fail: Fail) -> Shape:
    if len(shape) != 2:
        raise fail(f"needs a sequence (steps, features), got {shape}")
    steps, n_in = shape
    g, h = GATES[layer.type], layer.hidden
    counts.parameters += g * h * (n_in + h) + 2 * g * h
    counts.flops += 2 * g * h * (n_in + h) * steps
    counts.activations += g * h * steps  # gate values kept per step
    return (steps, h) if layer.return_sequences else (h,)


#: The shape rule of each plain layer type: (layer, input shape, counts, fail) -> output shape.
#: A new layer type is one function and one entry here (the residual recurses, so it is apart).
SHAPE_RULES: dict[type, Callable[[Any, Shape, Counts, Fail], Shape]] = {
    LinearLayer: _linear,
    Conv2dLayer: _conv2d,
    PoolLayer: _pool,
    FlattenLayer: _flatten,
    NormLayer: _norm,
    ActivationLayer: _elementwise,
    DropoutLayer: _elementwise,
    MaxoutLayer: _maxout,
    RecurrentLayer: _recurrent,
    **TRANSFORMER_SHAPE_RULES,
}


def _residual(layer: ResidualLayer, shape: Shape, loc: Loc, counts: Counts, fail: Fail,
              inner: list[dict[str, object]]) -> Shape:
    body_out = _walk(layer.body, shape, (*loc, "body"), counts, inner, False)
    if body_out == shape:
        return shape
    if len(shape) == 3 and len(body_out) == 3:
        if projection_stride(shape, body_out) is None:
            raise fail(f"no 1x1 projection maps {shape} to the body's output {body_out}")
        counts.parameters += shape[0] * body_out[0] + body_out[0]
        counts.flops += 2 * shape[0] * math.prod(body_out)
    elif len(shape) == len(body_out) and shape[:-1] == body_out[:-1]:
        counts.parameters += shape[-1] * body_out[-1] + body_out[-1]
        counts.flops += 2 * math.prod(shape) * body_out[-1]
    else:
        raise fail(f"the body maps {shape} to {body_out}; no projection can add them")
    return body_out


def _apply(
    layer: Layer,
    shape: Shape,
    loc: Loc,
    counts: Counts,
    described: list[dict[str, object]],
    family: bool,
) -> Shape:
    def fail(msg: str) -> ShapeError:
        return ShapeError(loc, f"{layer.type} layer: {msg}")

    inner: list[dict[str, object]] = []
    if isinstance(layer, ResidualLayer):
        out = _residual(layer, shape, loc, counts, fail, inner)
    else:
        out = SHAPE_RULES[type(layer)](layer, shape, counts, fail)
    counts.activations += math.prod(out)
    entry: dict[str, object] = {"type": layer.type, "in": list(shape), "out": list(out)}
    if isinstance(layer, ResidualLayer):
        entry["body"] = inner
    described.append(entry)
    return out
