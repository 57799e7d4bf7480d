"""The model-design spec (v1): what a client asks us to train and diagnose.

Torch-free: the service validates requests with these models, the worker builds from them.
Every model forbids unknown fields and uses strict types, so ``"3"`` is not an int and a typo
in a field name is an error that names the field.
"""

from worker.core.diagnostic_groups import PRESETS, DiagnosticGroup, Preset
from worker.core.spec.base import (
    ActivationName,
    DeviceRequest,
    InitScheme,
    Normalization,
    StrictModel,
    TaskType,
)
from worker.core.spec.data import (
    AddingData,
    AnyData,
    CopyData,
    DataShape,
    DataSpec,
    DigitsData,
    InlineData,
    MoonsData,
    ParityData,
    SpiralsData,
    TeacherData,
    data_shape,
)
from worker.core.spec.derived import parameter_count, steps_per_epoch, total_steps
from worker.core.spec.experiment import DiagnosticsSpec, ExperimentSpec, InitSpec, TrainingSpec
from worker.core.spec.layers import (
    ActivationLayer,
    Conv2dLayer,
    DropoutLayer,
    FamilyModel,
    FlattenLayer,
    Layer,
    LayersModel,
    LinearLayer,
    MaxoutLayer,
    NormLayer,
    PoolLayer,
    RecurrentLayer,
    ResidualLayer,
    compile_family,
)
from worker.core.spec.optim import OptimizerSpec, ScheduleSpec, lr_factor
from worker.core.spec.shapes import Analysis, ShapeError, analyze

__all__ = [
    "PRESETS",
    "ActivationLayer",
    "ActivationName",
    "AddingData",
    "Analysis",
    "AnyData",
    "Conv2dLayer",
    "CopyData",
    "DataShape",
    "DataSpec",
    "DeviceRequest",
    "DiagnosticGroup",
    "DiagnosticsSpec",
    "DigitsData",
    "DropoutLayer",
    "ExperimentSpec",
    "FamilyModel",
    "FlattenLayer",
    "InitScheme",
    "InitSpec",
    "InlineData",
    "Layer",
    "LayersModel",
    "LinearLayer",
    "MaxoutLayer",
    "MoonsData",
    "NormLayer",
    "Normalization",
    "OptimizerSpec",
    "ParityData",
    "PoolLayer",
    "Preset",
    "RecurrentLayer",
    "ResidualLayer",
    "ScheduleSpec",
    "ShapeError",
    "SpiralsData",
    "StrictModel",
    "TaskType",
    "TeacherData",
    "TrainingSpec",
    "analyze",
    "compile_family",
    "data_shape",
    "lr_factor",
    "parameter_count",
    "steps_per_epoch",
    "total_steps",
]
