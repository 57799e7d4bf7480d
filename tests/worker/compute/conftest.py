"""Fixtures for the torch side's tests."""

from __future__ import annotations

import pytest
import torch

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models run fastest on one thread, and far faster than two on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
