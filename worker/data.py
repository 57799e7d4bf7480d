"""Seeded, in-memory datasets, generated on the host and kept whole on the training device.

Data is drawn with NumPy from the spec's seed, so the same spec gives the same examples on
every device; it is then moved to the device once (no DataLoader: batches are index lookups).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from worker.spec import DataShape, DigitsData, SpiralsData, TaskType, TeacherData, data_shape

FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class Dataset:
    """Train and validation tensors on one device, and what they imply for the model."""

    x_train: Tensor
    y_train: Tensor
    x_val: Tensor
    y_val: Tensor
    shape: DataShape

    @property
    def task(self) -> TaskType:
        return self.shape.task


def make_dataset(
    spec: TeacherData | SpiralsData | DigitsData, seed: int, device: torch.device
) -> Dataset:
    """Generate (or load) the data a spec names, split it, and put it on ``device``."""
    rng = np.random.default_rng([seed, 7919])  # a stream of its own, apart from the model's
    shape = data_shape(spec)
    if isinstance(spec, TeacherData):
        x, y = _teacher(spec, rng)
    elif isinstance(spec, SpiralsData):
        x, y = _spirals(spec, rng)
    else:
        x, y = _digits(rng)
    n_train = shape.n_train
    x = _standardize(x, x[:n_train])
    if shape.task == "regression":
        y = _standardize(y, y[:n_train])
    y_t = torch.from_numpy(y).to(torch.long if shape.task == "classification" else torch.float32)
    x_t = torch.from_numpy(x)
    return Dataset(
        x_train=x_t[:n_train].to(device),
        y_train=y_t[:n_train].to(device),
        x_val=x_t[n_train:].to(device),
        y_val=y_t[n_train:].to(device),
        shape=shape,
    )


def _standardize(a: FloatArray, reference: FloatArray) -> FloatArray:
    """Zero mean, unit variance per feature, with statistics from the training split only."""
    mean = reference.mean(axis=0, keepdims=True)
    std = reference.std(axis=0, keepdims=True)
    out: FloatArray = ((a - mean) / np.where(std > 1e-8, std, 1.0)).astype(np.float32)
    return out


def _teacher(spec: TeacherData, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Gaussian inputs through a random tanh MLP (weights N(0, 1.5^2/fan_in)): nonlinear targets."""
    n = spec.n_train + spec.n_val
    x = rng.standard_normal((n, spec.input_dim)).astype(np.float32)
    h = x
    dims = [spec.input_dim] + [spec.teacher_width] * spec.teacher_depth
    for n_in, n_out in zip(dims[:-1], dims[1:], strict=True):
        w = rng.standard_normal((n_in, n_out)) * (1.5 / np.sqrt(n_in))
        h = np.tanh(h @ w)
    w_out = rng.standard_normal((dims[-1], spec.output_dim)) / np.sqrt(dims[-1])
    out = h @ w_out + spec.noise * rng.standard_normal((n, spec.output_dim))
    if spec.task == "classification":
        return x, out.argmax(axis=1).astype(np.float32)  # class ids, cast to long later
    return x, out.astype(np.float32)


def _spirals(spec: SpiralsData, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """``arms`` interleaved spirals; radius grows with the angle, one class per arm."""
    n = spec.n_train + spec.n_val
    labels = rng.integers(0, spec.arms, size=n)
    t = np.sqrt(rng.uniform(0.0, 1.0, size=n))  # uniform density along the area
    angle = 2 * np.pi * spec.turns * t + 2 * np.pi * labels / spec.arms
    x = np.stack([t * np.cos(angle), t * np.sin(angle)], axis=1)
    x = x + spec.noise * rng.standard_normal(x.shape)
    return x.astype(np.float32), labels.astype(np.float32)


def _digits(rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """scikit-learn's bundled digits (no download), shuffled with the seed."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    order = rng.permutation(len(bunch.target))
    x = np.asarray(bunch.data, dtype=np.float32)[order]
    y = np.asarray(bunch.target, dtype=np.float32)[order]
    return x, y
