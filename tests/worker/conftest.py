"""Helpers for worker tests: small specs built from keyword overrides, tiny data of each input
rank, and builders for layer lists (``make``, ``layers``, ``lin``, ... import them from here)."""

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


# --- minimal specs for the component tests (tests/worker/compute, tests/worker/core) ---------

# Tiny data of each input rank (digits is fixed-size, but small).
VEC: dict[str, Any] = {"kind": "spirals", "n_train": 48, "n_val": 16}
IMG: dict[str, Any] = {"kind": "digits", "layout": "image"}
SEQ: dict[str, Any] = {"kind": "adding", "length": 6, "n_train": 48, "n_val": 16}
COPY: dict[str, Any] = {
    "kind": "copy",
    "length": 3,
    "symbols": 2,
    "alphabet": 3,
    "n_train": 48,
    "n_val": 16,
}
TEACHER: dict[str, Any] = {
    "kind": "teacher",
    "input_dim": 5,
    "output_dim": 3,
    "teacher_width": 8,
    "n_train": 48,
    "n_val": 16,
}


def make(
    model: dict[str, Any],
    data: dict[str, Any],
    *,
    init: dict[str, Any] | None = None,
    optimizer: dict[str, Any] | None = None,
    training: dict[str, Any] | None = None,
    preset: str = "basic",
) -> ExperimentSpec:
    """A small spec; validated like a request body."""
    return ExperimentSpec.model_validate(
        {
            "spec_version": 1,
            "model": model,
            "init": init or {},
            "data": data,
            "optimizer": optimizer or {"lr": 0.01},
            "training": {"steps": 4, "batch_size": 16, "device": "cpu", **(training or {})},
            "diagnostics": {"preset": preset, "probe_batch_size": 16},
        }
    )


def layers(*items: dict[str, Any]) -> dict[str, Any]:
    return {"layers": list(items)}


def lin(out: int, **kw: Any) -> dict[str, Any]:
    return {"type": "linear", "out": out, **kw}


def act(name: str, **kw: Any) -> dict[str, Any]:
    return {"type": "activation", "name": name, **kw}


def conv(out: int, **kw: Any) -> dict[str, Any]:
    return {"type": "conv2d", "out_channels": out, **kw}


def rec(kind: str, hidden: int, **kw: Any) -> dict[str, Any]:
    return {"type": kind, "hidden": hidden, **kw}


def res(*body: dict[str, Any]) -> dict[str, Any]:
    return {"type": "residual", "body": list(body)}


FLATTEN = {"type": "flatten"}


def inline(x: Any, y: Any, **kw: Any) -> dict[str, Any]:
    return {"kind": "inline", "x": x, "y": y, **kw}


MLP = {"depth": 2, "width": 8}


def doc(model: dict[str, Any], data: dict[str, Any] | None = None, **parts: Any) -> dict[str, Any]:
    return {
        "spec_version": 1,
        "model": model,
        "data": data or VEC,
        "training": {"steps": 2},
        **parts,
    }
