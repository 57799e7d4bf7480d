"""Shared base and vocabularies of the spec (torch-free)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

ActivationName = Literal[
    "identity",
    "relu",
    "leaky_relu",
    "elu",
    "selu",
    "gelu",
    "silu",
    "softplus",
    "tanh",
    "sigmoid",
    "hard_tanh",
    "sin",
    "triangle",
    "sawtooth",
]
InitScheme = Literal[
    "default",
    "xavier_uniform",
    "xavier_normal",
    "kaiming_uniform",
    "kaiming_normal",
    "orthogonal",
    "normal",
]
Normalization = Literal["none", "batch", "layer"]
DeviceRequest = Literal["auto", "cpu", "cuda"]
TaskType = Literal["classification", "regression"]


class StrictModel(BaseModel):
    """Base for every spec model: unknown fields are errors, no silent type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)
