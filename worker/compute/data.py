"""Seeded, in-memory datasets, generated on the host and kept whole on the training device.

Data is drawn with NumPy from the spec's seed, so the same spec gives the same examples on
every device; it is then moved to the device once (no DataLoader: batches are index lookups).

Large inputs are made in place: the teacher's Gaussian inputs are drawn ``CHUNK_FLOATS`` at a
time into one float32 array (and its hidden layers computed chunk by chunk), and
standardization works in place, so the peak is the float32 data plus one copy while its
statistics are computed -- the two copies ``worker/core/budgets.py`` counts -- not the float64
draws and the temporaries of each step.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from torch import Tensor

from worker.compute.token_data import generate_tokens
from worker.core.spec import (
    TOKEN_DATA,
    AddingData,
    AnyData,
    CopyData,
    DataShape,
    DigitsData,
    InlineData,
    MoonsData,
    ParityData,
    SpiralsData,
    TaskType,
    TeacherData,
    data_shape,
)

FloatArray = NDArray[np.float32]

#: Values drawn (or hidden units computed) at a time while generating large inputs: the float64
#: temporaries stay near 8 MiB whatever the dataset's size.
CHUNK_FLOATS = 1 << 20


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


def make_dataset(spec: AnyData, seed: int, device: torch.device) -> Dataset:
    """Generate (or load) the data a spec names, split it, and put it on ``device``.

    Vector inputs are standardized with training-split statistics (so are teacher regression
    targets); sequences, images of digits and inline arrays keep their scale (digits images
    are divided by 16, their maximum).
    """
    rng = np.random.default_rng([seed, 7919])  # a stream of its own, apart from the model's
    shape = data_shape(spec)
    n_train = shape.n_train
    x, y = _generate(spec, rng)
    if len(shape.input_shape) == 1 and not isinstance(spec, InlineData | ParityData):
        x = _standardize(x, x[:n_train])
    if isinstance(spec, TeacherData) and spec.task == "regression":
        y = _standardize(y, y[:n_train])
    y_t = torch.from_numpy(y).to(torch.long if shape.task == "classification" else torch.float32)
    if shape.task == "regression" and y_t.dim() == 1:
        y_t = y_t[:, None]
    x_t = torch.from_numpy(x)
    return Dataset(
        x_train=x_t[:n_train].to(device),
        y_train=y_t[:n_train].to(device),
        x_val=x_t[n_train:].to(device),
        y_val=y_t[n_train:].to(device),
        shape=shape,
    )


def _generate(spec: AnyData, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    if isinstance(spec, TOKEN_DATA):
        return generate_tokens(spec, rng)
    if isinstance(spec, TeacherData):
        return _teacher(spec, rng)
    if isinstance(spec, SpiralsData):
        return _spirals(spec, rng)
    if isinstance(spec, MoonsData):
        return _moons(spec, rng)
    if isinstance(spec, ParityData):
        return _parity(spec, rng)
    if isinstance(spec, DigitsData):
        x, y = _digits(rng)
        return (x.reshape(-1, 1, 8, 8) / 16.0 if spec.layout == "image" else x), y
    if isinstance(spec, AddingData):
        return _adding(spec, rng)
    if isinstance(spec, CopyData):
        return _copy(spec, rng)
    return _inline(spec)


def _standardize(a: FloatArray, reference: FloatArray) -> FloatArray:
    """Zero mean, unit variance per feature, with statistics from the training split only
    (``reference``, a view of ``a``); in place when ``a`` is float32 already."""
    out: FloatArray = np.asarray(a, dtype=np.float32)
    mean = reference.mean(axis=0, keepdims=True)
    std = reference.std(axis=0, keepdims=True)
    out -= mean
    out /= np.where(std > 1e-8, std, 1.0)
    return out


def _row_chunks(n: int, per_row: int) -> list[slice]:
    """Consecutive row ranges of ``range(n)``, about ``CHUNK_FLOATS`` values each."""
    rows = max(1, CHUNK_FLOATS // max(per_row, 1))
    return [slice(start, min(start + rows, n)) for start in range(0, n, rows)]


def _teacher(spec: TeacherData, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Gaussian inputs through a random tanh MLP (weights N(0, 1.5^2/fan_in)): nonlinear targets."""
    # Drawn in row chunks in the order one draw of the whole would make them (inputs, weights,
    # noise): the same values, without an n x input_dim float64 array (module docstring).
    n = spec.n_train + spec.n_val
    x = np.empty((n, spec.input_dim), dtype=np.float32)
    for rows in _row_chunks(n, spec.input_dim):
        x[rows] = rng.standard_normal((rows.stop - rows.start, spec.input_dim))
    dims = [spec.input_dim] + [spec.teacher_width] * spec.teacher_depth
    weights = [rng.standard_normal((n_in, n_out)) * (1.5 / np.sqrt(n_in))
               for n_in, n_out in zip(dims[:-1], dims[1:], strict=True)]
    w_out = rng.standard_normal((dims[-1], spec.output_dim)) / np.sqrt(dims[-1])
    classes = spec.task == "classification"
    y = np.empty((n,) if classes else (n, spec.output_dim), dtype=np.float32)
    for rows in _row_chunks(n, max(*dims, spec.output_dim)):
        h = x[rows]
        for w in weights:
            h = np.tanh(h @ w)
        out = h @ w_out + spec.noise * rng.standard_normal((rows.stop - rows.start,
                                                            spec.output_dim))
        y[rows] = out.argmax(axis=1) if classes else out  # class ids, cast to long later
    return x, y


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


def _moons(spec: MoonsData, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """Two interleaving half circles, as scikit-learn's make_moons, drawn from ``rng``."""
    n = spec.n_train + spec.n_val
    labels = rng.integers(0, 2, size=n)
    angle = rng.uniform(0.0, np.pi, size=n)
    x = np.where(
        labels[:, None] == 0,
        np.stack([np.cos(angle), np.sin(angle)], axis=1),
        np.stack([1 - np.cos(angle), 0.5 - np.sin(angle)], axis=1),
    )
    x = x + spec.noise * rng.standard_normal(x.shape)
    return x.astype(np.float32), labels.astype(np.float32)


def _parity(spec: ParityData, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """+-1 bits; the label is the parity of the number of -1 bits."""
    n = spec.n_train + spec.n_val
    bits = rng.integers(0, 2, size=(n, spec.n_bits))
    x = (1 - 2 * bits).astype(np.float32)
    y = (bits.sum(axis=1) % 2).astype(np.float32)
    return (x[:, :, None] if spec.as_sequence else x), y


def _adding(spec: AddingData, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """(value, marker) steps; the target is the sum of the values at the two markers, one in
    each half of the sequence. Predicting the mean (1) scores MSE 1/6."""
    n, t = spec.n_train + spec.n_val, spec.length
    values = rng.uniform(0.0, 1.0, size=(n, t))
    half = max(1, t // 2)
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, t, size=n) if t > 1 else first
    markers = np.zeros((n, t))
    markers[np.arange(n), first] = 1.0
    markers[np.arange(n), second] = 1.0
    y = values[np.arange(n), first] + values[np.arange(n), second]
    return np.stack([values, markers], axis=2).astype(np.float32), y.astype(np.float32)


def _copy(spec: CopyData, rng: np.random.Generator) -> tuple[FloatArray, FloatArray]:
    """One-hot steps: symbols, blanks, a delimiter, blanks; recall the symbols at the end.

    Input classes: 0 blank, 1..alphabet symbols, alphabet+1 delimiter. Targets per step:
    blank (0) everywhere but the last ``symbols`` steps, which hold the symbols.
    """
    n, s, k = spec.n_train + spec.n_val, spec.symbols, spec.alphabet
    steps = 2 * s + spec.length + 1
    symbols = rng.integers(1, k + 1, size=(n, s))
    tokens = np.zeros((n, steps), dtype=np.int64)
    tokens[:, :s] = symbols
    tokens[:, s + spec.length] = k + 1
    targets = np.zeros((n, steps), dtype=np.float32)
    targets[:, -s:] = symbols
    x = np.eye(k + 2, dtype=np.float32)[tokens]
    return x, targets


def _inline(spec: InlineData) -> tuple[FloatArray, FloatArray]:
    """The request's arrays as they are (the last ``val_fraction`` is the validation split)."""
    return np.asarray(spec.x, dtype=np.float32), np.asarray(spec.y, dtype=np.float32)
