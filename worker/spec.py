"""The model-design spec (v1): what a client asks us to train and diagnose.

Torch-free: the service validates requests with these models, the worker builds from them.
Every model forbids unknown fields and uses strict types, so ``"3"`` is not an int and a typo
in a field name is an error that names the field.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

ActivationName = Literal["identity", "relu", "leaky_relu", "tanh", "sigmoid", "gelu"]
InitScheme = Literal[
    "default", "xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal", "normal"
]
Normalization = Literal["none", "batch", "layer"]
DeviceRequest = Literal["auto", "cpu", "cuda"]
TaskType = Literal["classification", "regression"]


class StrictModel(BaseModel):
    """Base for every spec model: unknown fields are errors, no silent type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class MLPModel(StrictModel):
    """A multilayer perceptron: ``depth`` hidden blocks of ``width`` units, then a linear head.

    Each hidden block is ``linear -> normalization -> activation``; with ``residual`` every
    hidden block after the first adds its input to its output (``h + block(h)``).
    """

    family: Literal["mlp"] = "mlp"
    depth: int = Field(description="Number of hidden blocks.", ge=1, le=128)
    width: int = Field(description="Units per hidden block.", ge=1, le=8192)
    activation: ActivationName = "relu"
    leaky_relu_slope: float = Field(0.01, description="Negative slope of leaky_relu.", ge=0, le=1)
    residual: bool = Field(False, description="Identity skip connection around hidden blocks 2..L.")
    normalization: Normalization = "none"


class InitSpec(StrictModel):
    """Weight initialization of every linear layer.

    ``normal`` draws W ~ N(0, gain^2 / fan_in) (the mean-field convention); ``xavier_*`` and
    ``kaiming_*`` use PyTorch's definitions with ``gain`` (kaiming: the gain replaces
    sqrt(2) when given); ``default`` keeps PyTorch's own layer initialization.
    """

    scheme: InitScheme = "default"
    gain: float | None = Field(
        None, description="Gain; default 1 (kaiming: the activation's gain).", gt=0, le=100
    )
    bias_std: float = Field(
        0.0, description="Std of the normal bias init (0 = zeros).", ge=0, le=100
    )

    @model_validator(mode="after")
    def _gain_needs_scheme(self) -> InitSpec:
        if self.scheme == "default" and self.gain is not None:
            raise ValueError("gain is not used by scheme 'default'; pick another scheme")
        return self


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
    noise: float = Field(
        0.0, description="Std of Gaussian noise on the teacher's output.", ge=0, le=10
    )
    n_train: int = Field(2048, ge=8, le=1_000_000)
    n_val: int = Field(512, ge=8, le=1_000_000)

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
    n_train: int = Field(2048, ge=8, le=1_000_000)
    n_val: int = Field(512, ge=8, le=1_000_000)


class DigitsData(StrictModel):
    """scikit-learn's bundled 8x8 handwritten digits (1797 images, 10 classes), flattened."""

    kind: Literal["digits"] = "digits"
    val_fraction: float = Field(0.2, gt=0, lt=1)


DataSpec = Annotated[TeacherData | SpiralsData | DigitsData, Field(discriminator="kind")]


class OptimizerSpec(StrictModel):
    """SGD with momentum: v <- momentum * v + grad (+ weight_decay * w); w <- w - lr * v."""

    name: Literal["sgd"] = "sgd"
    lr: float = Field(0.05, gt=0, le=100)
    momentum: float = Field(0.9, ge=0, lt=1)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _nesterov_needs_momentum(self) -> OptimizerSpec:
        if self.nesterov and self.momentum == 0:
            raise ValueError("nesterov requires momentum > 0")
        return self


class TrainingSpec(StrictModel):
    """How long and on what to train. Give exactly one of ``steps`` or ``epochs``."""

    steps: int | None = Field(None, ge=1, le=10_000_000)
    epochs: int | None = Field(None, ge=1, le=100_000)
    batch_size: int = Field(64, ge=1, le=65_536)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    device: DeviceRequest = "auto"

    @model_validator(mode="after")
    def _steps_or_epochs(self) -> TrainingSpec:
        if (self.steps is None) == (self.epochs is None):
            raise ValueError("give exactly one of 'steps' or 'epochs'")
        return self


class DiagnosticsSpec(StrictModel):
    """Which probes run and when. Probes always run at step 0 and at the end."""

    enabled: bool = True
    every: int | None = Field(
        None, description="Steps between probes; default: about 8 probes over the run.", ge=1
    )
    probe_batch_size: int = Field(256, ge=8, le=8192)
    slope_threshold: float = Field(
        0.1,
        description="tau: a unit has significant slope when |phi'| >= tau * max|phi'|.",
        gt=0,
        lt=1,
    )
    vanishing_ratio: float = Field(
        1e-2, description="End-to-end ratio below this: vanishing.", gt=0, lt=1
    )
    exploding_ratio: float = Field(1e2, description="End-to-end ratio above this: exploding.", gt=1)
    curve_points: int = Field(
        200, description="Loss/accuracy points kept in the curves (downsampled).", ge=10, le=5000
    )


class ExperimentSpec(StrictModel):
    """One design to train and diagnose."""

    spec_version: Literal[1]
    name: str | None = Field(None, max_length=200)
    model: MLPModel
    init: InitSpec = InitSpec()
    data: DataSpec
    optimizer: OptimizerSpec = OptimizerSpec()
    training: TrainingSpec
    diagnostics: DiagnosticsSpec = DiagnosticsSpec()


# --- derived quantities (torch-free, used for budgets, validation and the worker) -------------


class DataShape(StrictModel):
    """What the data spec implies for the model: input size, output size, task, train size."""

    input_dim: int
    output_dim: int
    task: TaskType
    n_train: int
    n_val: int


DIGITS_N = 1797


def data_shape(data: TeacherData | SpiralsData | DigitsData) -> DataShape:
    """Input/output dimensions and split sizes implied by a data spec."""
    if isinstance(data, TeacherData):
        return DataShape(
            input_dim=data.input_dim,
            output_dim=data.output_dim,
            task=data.task,
            n_train=data.n_train,
            n_val=data.n_val,
        )
    if isinstance(data, SpiralsData):
        return DataShape(
            input_dim=2,
            output_dim=data.arms,
            task="classification",
            n_train=data.n_train,
            n_val=data.n_val,
        )
    n_val = max(1, round(DIGITS_N * data.val_fraction))
    return DataShape(
        input_dim=64, output_dim=10, task="classification", n_train=DIGITS_N - n_val, n_val=n_val
    )


def parameter_count(spec: ExperimentSpec) -> int:
    """Trainable parameters of the model the spec describes (matches the built module)."""
    shape = data_shape(spec.data)
    m = spec.model
    count = shape.input_dim * m.width + m.width  # first hidden linear
    count += (m.depth - 1) * (m.width * m.width + m.width)  # other hidden linears
    if m.normalization != "none":
        count += m.depth * 2 * m.width  # affine scale and shift per block
    count += m.width * shape.output_dim + shape.output_dim  # head
    return count


def total_steps(spec: ExperimentSpec) -> int:
    """Optimizer steps the run will take (epochs are converted with the train-set size)."""
    t = spec.training
    if t.steps is not None:
        return t.steps
    assert t.epochs is not None
    return t.epochs * steps_per_epoch(spec)


def steps_per_epoch(spec: ExperimentSpec) -> int:
    """Full batches per pass over the training set (the last partial batch is dropped).

    A batch larger than the training set is capped to it, so an epoch is at least one step.
    Dropping the remainder keeps every batch the same size (batch norm needs more than one
    example, and equal batches keep steps comparable).
    """
    return max(1, data_shape(spec.data).n_train // spec.training.batch_size)
