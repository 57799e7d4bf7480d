"""Helpers for worker tests: small specs built from keyword overrides."""

from __future__ import annotations

from typing import Any

import pytest

from worker.core.spec import ExperimentSpec


def make_spec(
    *,
    model: dict[str, Any] | None = None,
    init: dict[str, Any] | None = None,
    data: dict[str, Any] | None = None,
    optimizer: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    diagnostics: dict[str, Any] | None = None,
) -> ExperimentSpec:
    doc: dict[str, Any] = {
        "spec_version": 1,
        "model": {"depth": 3, "width": 16, "activation": "relu", **(model or {})},
        "init": init or {},
        "data": data or {"kind": "spirals", "n_train": 256, "n_val": 64},
        "optimizer": optimizer or {},
        "training": {"steps": 20, "batch_size": 32, "device": "cpu", **(training or {})},
        "diagnostics": diagnostics or {},
    }
    return ExperimentSpec.model_validate(doc)


@pytest.fixture
def spec_factory():
    return make_spec
