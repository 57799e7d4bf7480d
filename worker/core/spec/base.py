"""Shared base and vocabularies of the spec (torch-free)."""

from __future__ import annotations

import types
import typing
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, model_validator

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


def _takes_int(annotation: Any) -> tuple[bool, bool]:
    """(an int is allowed, a list of ints is allowed) by ``annotation``."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _takes_int(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        found = [_takes_int(arg) for arg in typing.get_args(annotation)]
        return any(f[0] for f in found), any(f[1] for f in found)
    if origin is list:
        (item,) = typing.get_args(annotation) or (Any,)
        return False, _takes_int(item)[0]
    return annotation is int, False


def _integral(value: Any) -> Any:
    """``3.0`` as ``3``: JSON (and JSON Schema) do not tell them apart."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class StrictModel(BaseModel):
    """Base for every spec model: unknown fields are errors, no silent type coercion.

    One exception: a number with no fraction (``64.0``) is taken for an integer field, as
    JSON Schema's ``integer`` (the OpenAPI document) counts it one; ``64.5``, ``"64"`` and
    ``true`` are still refused.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)

    @model_validator(mode="before")
    @classmethod
    def _integral_floats(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        fixed = None
        for name, value in data.items():
            if not isinstance(value, float | list) or name not in cls.model_fields:
                continue
            scalar, items = _takes_int(cls.model_fields[name].annotation)
            if scalar and isinstance(value, float) and value.is_integer():
                fixed = fixed if fixed is not None else dict(data)
                fixed[name] = int(value)
            elif items and isinstance(value, list) and any(isinstance(v, float) for v in value):
                fixed = fixed if fixed is not None else dict(data)
                fixed[name] = [_integral(v) for v in value]
        return data if fixed is None else fixed
