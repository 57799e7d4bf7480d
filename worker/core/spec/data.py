"""Data specs: seeded generators, scikit-learn's bundled digits, and small inline arrays.

Each kind implies a :class:`DataShape` (input shape, output size, task, split sizes) that the
model is checked against before anything is queued.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from worker.core.spec.base import StrictModel, TaskType
from worker.core.spec.tokens import (
    TOKEN_KINDS,
    AssociativeRecallData,
    MarkovLanguageData,
    ModularAdditionData,
    TokenCopyData,
    TokenSortData,
    token_shape_fields,
)

MAX_EXAMPLES = 1_000_000
DIGITS_N = 1797
FLOAT32_MAX = 3.4028234663852886e38
#: Most classes (and regression outputs) a task may have: the head is a linear layer, whose
#: width is bounded like every layer's (``layers.MAX_WIDTH``).
MAX_OUTPUTS = 8192


class TeacherData(StrictModel):
    """Targets from a fixed random teacher MLP (tanh) on Gaussian inputs."""

    kind: Literal["teacher"] = "teacher"
    task: TaskType = "classification"
    input_dim: int = Field(16, ge=1, le=4096)
    output_dim: int = Field(
        4, description="Classes (classification) or outputs (regression).", ge=1, le=1000
    )
    teacher_depth: int = Field(2, ge=1, le=16)
    teacher_width: int = Field(32, ge=1, le=1024)
    noise: float = Field(0.0, description="Std of noise on the teacher's output.", ge=0, le=10)
    n_train: int = Field(2048, ge=8, le=MAX_EXAMPLES)
    n_val: int = Field(512, ge=8, le=MAX_EXAMPLES)

    @model_validator(mode="after")
    def _classes(self) -> TeacherData:
        if self.task == "classification" and self.output_dim < 2:
            raise ValueError("output_dim must be at least 2 for classification")
        return self


class SpiralsData(StrictModel):
    """Interleaved 2-D spirals, one class per arm."""

    kind: Literal["spirals"] = "spirals"
    arms: int = Field(2, ge=2, le=10)
    turns: float = Field(1.5, gt=0, le=10)
    noise: float = Field(0.05, ge=0, le=5)
    n_train: int = Field(2048, ge=8, le=MAX_EXAMPLES)
    n_val: int = Field(512, ge=8, le=MAX_EXAMPLES)


class MoonsData(StrictModel):
    """Two interleaving half circles (scikit-learn's make_moons), two classes."""

    kind: Literal["moons"] = "moons"
    noise: float = Field(0.1, ge=0, le=5)
    n_train: int = Field(2048, ge=8, le=MAX_EXAMPLES)
    n_val: int = Field(512, ge=8, le=MAX_EXAMPLES)


class ParityData(StrictModel):
    """n-bit parity of +-1 inputs: a hard task for local gradient signals. ``as_sequence``
    feeds the bits one per step (for recurrent models)."""

    kind: Literal["parity"] = "parity"
    n_bits: int = Field(8, ge=2, le=64)
    as_sequence: bool = False
    n_train: int = Field(2048, ge=8, le=MAX_EXAMPLES)
    n_val: int = Field(512, ge=8, le=MAX_EXAMPLES)


class DigitsData(StrictModel):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes)."""

    kind: Literal["digits"] = "digits"
    layout: Literal["flat", "image"] = Field("flat", description="64 features, or 1x8x8 image.")
    val_fraction: float = Field(0.2, gt=0, lt=1)


class AddingData(StrictModel):
    """The adding problem (Hochreiter & Schmidhuber 1997): ``length`` steps of (value, marker);
    the target is the sum of the two marked values, one in each half of the sequence."""

    kind: Literal["adding"] = "adding"
    length: int = Field(50, ge=2, le=10_000)
    n_train: int = Field(2048, ge=8, le=MAX_EXAMPLES)
    n_val: int = Field(512, ge=8, le=MAX_EXAMPLES)


class CopyData(StrictModel):
    """The copy task (Arjovsky et al. 2016): ``symbols`` random symbols from an alphabet of
    ``alphabet`` letters, ``length`` blanks, a delimiter, then the model must reproduce the
    symbols; targets are per step (blank elsewhere)."""

    kind: Literal["copy"] = "copy"
    length: int = Field(20, description="Blank steps between input and recall.", ge=1, le=10_000)
    symbols: int = Field(5, ge=1, le=100)
    alphabet: int = Field(8, ge=2, le=64)
    n_train: int = Field(2048, ge=8, le=MAX_EXAMPLES)
    n_val: int = Field(512, ge=8, le=MAX_EXAMPLES)


class InlineData(StrictModel):
    """Small arrays in the request: ``x`` is a list of equally shaped examples (vectors, or
    nested lists for sequences/images), ``y`` integer class ids (classification) or numbers /
    equal-length lists of numbers (regression). The last ``val_fraction`` is validation."""

    kind: Literal["inline"] = "inline"
    x: list[list[float]] | list[list[list[float]]] | list[list[list[list[float]]]] = Field(
        min_length=4
    )
    task: TaskType | None = Field(None, description="Default: classification for integer y.")
    y: list[int] | list[float] | list[list[float]] = Field(min_length=4)
    layout: Literal["auto", "vector", "sequence", "image"] = Field(
        "auto", description="auto: 1-D examples are vectors, 2-D sequences, 3-D images."
    )
    val_fraction: float = Field(0.2, gt=0, lt=1)

    @field_validator("y")
    @classmethod
    def _class_ids_fit_a_head(cls, y: list[Any], info: ValidationInfo) -> list[Any]:
        """Class ids set the head's width, which is bounded like every layer's: checked here so
        the error names ``data.y`` (not a layer built later from it)."""
        classes = info.data.get("task") != "regression" and all(isinstance(v, int) for v in y)
        if classes and y and max(y) >= MAX_OUTPUTS:
            raise ValueError(f"class ids must be below {MAX_OUTPUTS} (the widest head), "
                             f"got {max(y)}")
        return y

    @model_validator(mode="after")
    def _consistent(self) -> InlineData:
        if len(self.x) != len(self.y):
            raise ValueError(f"x has {len(self.x)} examples but y has {len(self.y)}")
        first = _shape_of(self.x[0])
        for i, example in enumerate(self.x):
            if not _is_rectangular(example):
                raise ValueError(f"x[{i}] is ragged: its nested lists differ in length")
            if _shape_of(example) != first:
                raise ValueError(f"x[{i}] has shape {_shape_of(example)}, x[0] has {first}")
            if not all(_finite32(v) for v in _flat(example)):
                raise ValueError(f"x[{i}] has a non-finite value (or one beyond float32)")
        if 0 in first:
            raise ValueError(f"examples must not be empty, x[0] has shape {first}")
        if not all(_finite32(v) for v in _flat(self.y)):
            raise ValueError("y has a non-finite value (or one beyond float32)")
        expected = {"vector": 1, "sequence": 2, "image": 3}.get(self.layout)
        if expected is not None and len(first) != expected:
            raise ValueError(f"layout {self.layout!r} needs {expected}-D examples, got {first}")
        task = self.inferred_task()
        if task == "classification":
            if not all(isinstance(v, int) and v >= 0 for v in self.y):
                raise ValueError("classification targets must be integer class ids >= 0")
            if len({str(v) for v in self.y}) < 2:
                raise ValueError("classification needs at least two classes in y")
        else:
            widths = {len(v) if isinstance(v, list) else None for v in self.y}
            if len(widths) != 1:
                raise ValueError("regression targets must all have the same length")
            if 0 in widths:
                raise ValueError("regression targets must not be empty lists")
            if max((w or 1) for w in widths) > MAX_OUTPUTS:
                raise ValueError(f"regression targets may have at most {MAX_OUTPUTS} values")
        n_val = self.n_val()
        if n_val < 1 or len(self.x) - n_val < 2:
            raise ValueError("too few examples for a train/validation split")
        return self

    def inferred_task(self) -> TaskType:
        if self.task is not None:
            return self.task
        return "classification" if all(isinstance(v, int) for v in self.y) else "regression"

    def n_val(self) -> int:
        return max(1, round(len(self.x) * self.val_fraction))


def _shape_of(value: object) -> tuple[int, ...]:
    if isinstance(value, list):
        return (len(value), *(_shape_of(value[0]) if value else ()))
    return ()


def _is_rectangular(value: object) -> bool:
    """Every nested list at the same depth has the same length (NumPy can stack it)."""
    if not isinstance(value, list) or not value:
        return True
    shapes = {_shape_of(item) for item in value}
    return len(shapes) == 1 and all(_is_rectangular(item) for item in value)


def _finite32(value: float) -> bool:
    """Finite, and still finite once stored as float32 (the data's dtype)."""
    return math.isfinite(value) and abs(value) <= FLOAT32_MAX


def _flat(value: object) -> list[float]:
    if isinstance(value, list):
        return [v for item in value for v in _flat(item)]
    return [float(value)]  # type: ignore[arg-type]


AnyData = (
    TeacherData
    | SpiralsData
    | MoonsData
    | ParityData
    | DigitsData
    | AddingData
    | CopyData
    | InlineData
    | TokenCopyData
    | TokenSortData
    | AssociativeRecallData
    | ModularAdditionData
    | MarkovLanguageData
)
DataSpec = Annotated[AnyData, Field(discriminator="kind")]


class DataShape(StrictModel):
    """What a data spec implies for the model.

    ``input_shape`` excludes the batch: (features,), (steps, features) or (channels, h, w).
    ``per_step`` tasks predict at every sequence step (targets have a time axis).
    """

    input_shape: tuple[int, ...]
    output_dim: int
    task: TaskType
    n_train: int
    n_val: int
    per_step: bool = False
    sequence_length: int | None = None
    causal: bool = False  # the target at step t is the input at t + 1: models must not look ahead
    min_cross_entropy: float | None = None  # the best achievable per-step loss, where known

    @property
    def input_dim(self) -> int:
        return self.input_shape[-1]


def _teacher_shape(data: TeacherData) -> DataShape:
    return DataShape(input_shape=(data.input_dim,), output_dim=data.output_dim, task=data.task,
                     n_train=data.n_train, n_val=data.n_val)


def _points_shape(data: SpiralsData | MoonsData) -> DataShape:
    arms = data.arms if isinstance(data, SpiralsData) else 2
    return DataShape(input_shape=(2,), output_dim=arms, task="classification",
                     n_train=data.n_train, n_val=data.n_val)


def _parity_shape(data: ParityData) -> DataShape:
    bits: tuple[int, ...] = (data.n_bits, 1) if data.as_sequence else (data.n_bits,)
    return DataShape(input_shape=bits, output_dim=2, task="classification",
                     n_train=data.n_train, n_val=data.n_val,
                     sequence_length=data.n_bits if data.as_sequence else None)


def _digits_shape(data: DigitsData) -> DataShape:
    n_val = max(1, round(DIGITS_N * data.val_fraction))
    return DataShape(input_shape=(64,) if data.layout == "flat" else (1, 8, 8), output_dim=10,
                     task="classification", n_train=DIGITS_N - n_val, n_val=n_val)


def _adding_shape(data: AddingData) -> DataShape:
    return DataShape(input_shape=(data.length, 2), output_dim=1, task="regression",
                     n_train=data.n_train, n_val=data.n_val, sequence_length=data.length)


def _copy_shape(data: CopyData) -> DataShape:
    steps = 2 * data.symbols + data.length + 1
    return DataShape(input_shape=(steps, data.alphabet + 2), output_dim=data.alphabet + 1,
                     task="classification", n_train=data.n_train, n_val=data.n_val,
                     per_step=True, sequence_length=steps)


def _inline_shape(data: InlineData) -> DataShape:
    shape = _shape_of(data.x[0])
    task = data.inferred_task()
    if task == "classification":
        output_dim = max(v for v in data.y if isinstance(v, int)) + 1
    else:
        output_dim = len(data.y[0]) if isinstance(data.y[0], list) else 1
    n_val = data.n_val()
    return DataShape(input_shape=shape, output_dim=output_dim, task=task,
                     n_train=len(data.x) - n_val, n_val=n_val,
                     sequence_length=shape[0] if len(shape) == 2 else None)


#: The shape rule of each data kind; a new dataset is its spec class and one entry here.
SHAPE_OF: dict[str, Callable[[Any], DataShape]] = {
    "teacher": _teacher_shape,
    "spirals": _points_shape,
    "moons": _points_shape,
    "parity": _parity_shape,
    "digits": _digits_shape,
    "adding": _adding_shape,
    "copy": _copy_shape,
    "inline": _inline_shape,
    **{kind: lambda data: DataShape(**token_shape_fields(data)) for kind in TOKEN_KINDS},
}


def data_shape(data: AnyData) -> DataShape:
    """Input shape, output size, task and split sizes implied by a data spec."""
    return SHAPE_OF[data.kind](data)
