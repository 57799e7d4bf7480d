"""Quantities derived from a spec: steps, parameter count (torch-free)."""

from __future__ import annotations

from worker.core.spec.data import data_shape
from worker.core.spec.experiment import ExperimentSpec


def steps_per_epoch(spec: ExperimentSpec) -> int:
    """Full batches per pass over the training set (the last partial batch is dropped).

    A batch larger than the training set is capped to it, so an epoch is at least one step.
    Dropping the remainder keeps every batch the same size (batch norm needs more than one
    example, and equal batches keep steps comparable).
    """
    return max(1, data_shape(spec.data).n_train // spec.training.batch_size)


def total_steps(spec: ExperimentSpec) -> int:
    """Optimizer steps the run will take (epochs are converted with the train-set size)."""
    t = spec.training
    if t.steps is not None:
        return t.steps
    assert t.epochs is not None
    return t.epochs * steps_per_epoch(spec)


def parameter_count(spec: ExperimentSpec) -> int:
    """Trainable parameters of the model the spec describes (matches the built module).

    Raises :class:`worker.core.spec.shapes.ShapeError` when the layers do not fit the data.
    """
    from worker.core.spec.shapes import analyze

    return analyze(spec).parameters
