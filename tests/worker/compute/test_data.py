"""The synthetic and shipped datasets against their definitions.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tests.worker.compute.conftest import CPU
from tests.worker.conftest import IMG, MLP, make
from worker.compute.data import make_dataset

pytestmark = pytest.mark.usefixtures("one_thread")


def test_adding_problem_targets_and_markers():
    spec = make(
        {"family": "lstm", "depth": 1, "width": 4},
        {"kind": "adding", "length": 11, "n_train": 64, "n_val": 16},
    )
    ds = make_dataset(spec.data, 5, CPU)
    x, y = torch.cat([ds.x_train, ds.x_val]), torch.cat([ds.y_train, ds.y_val])
    values, markers = x[..., 0], x[..., 1]
    assert x.shape == (80, 11, 2) and y.shape == (80, 1)
    assert torch.all((values >= 0) & (values < 1))
    assert torch.all(markers.sum(dim=1) == 2)
    assert torch.all(markers[:, :5].sum(dim=1) == 1) and torch.all(markers[:, 5:].sum(dim=1) == 1)
    torch.testing.assert_close((values * markers).sum(dim=1, keepdim=True), y)


def test_copy_task_targets_are_the_symbols_at_the_end():
    s, length, k = 3, 4, 5
    data = {
        "kind": "copy",
        "length": length,
        "symbols": s,
        "alphabet": k,
        "n_train": 32,
        "n_val": 8,
    }
    ds = make_dataset(make({"family": "lstm", "depth": 1, "width": 4}, data).data, 1, CPU)
    tokens, y = ds.x_train.argmax(dim=-1), ds.y_train
    steps = 2 * s + length + 1
    assert ds.x_train.shape == (32, steps, k + 2) and y.shape == (32, steps)
    assert torch.all(ds.x_train.sum(dim=-1) == 1)  # one-hot
    symbols = tokens[:, :s]
    assert torch.all((symbols >= 1) & (symbols <= k))
    assert torch.all(tokens[:, s + length] == k + 1)  # the delimiter
    assert torch.all(tokens[:, s : s + length] == 0) and torch.all(tokens[:, s + length + 1 :] == 0)
    assert torch.equal(y[:, -s:], symbols)
    assert torch.all(y[:, :-s] == 0)


@pytest.mark.parametrize("as_sequence", [False, True])
def test_parity_labels(as_sequence):
    data = {"kind": "parity", "n_bits": 5, "as_sequence": as_sequence, "n_train": 64, "n_val": 16}
    model = {"family": "rnn", "depth": 1, "width": 3} if as_sequence else MLP
    ds = make_dataset(make(model, data).data, 2, CPU)
    x = ds.x_train.reshape(64, 5)
    assert ds.x_train.shape == ((64, 5, 1) if as_sequence else (64, 5))
    assert torch.all(x.abs() == 1)  # +-1 bits, not standardized
    assert torch.equal(ds.y_train, ((x < 0).sum(dim=1) % 2).long())


def test_digits_image_layout():
    from sklearn.datasets import load_digits

    ds = make_dataset(make({"family": "cnn", "depth": 1, "width": 2}, IMG).data, 0, CPU)
    flat = make_dataset(make(MLP, {"kind": "digits"}).data, 0, CPU)
    assert ds.x_train.shape[1:] == (1, 8, 8) and ds.x_train.shape[0] + ds.x_val.shape[0] == 1797
    assert float(ds.x_train.min()) >= 0 and float(ds.x_train.max()) <= 1
    assert torch.equal(ds.y_train, flat.y_train)  # the same seeded order in both layouts
    bunch = load_digits()
    by_pixels = {
        row.astype(np.float32).tobytes(): int(t)
        for row, t in zip(bunch.data, bunch.target, strict=True)
    }
    for image, label in zip(ds.x_train[:20], ds.y_train[:20], strict=True):
        raw = (image.reshape(64) * 16).numpy().astype(np.float32)
        assert by_pixels[raw.tobytes()] == int(label)  # row-major 8x8 of the original pixels
