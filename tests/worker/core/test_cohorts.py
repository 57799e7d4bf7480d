"""Which sweep points train together: same design, differing only in ``COHORT_FIELDS``."""

from __future__ import annotations

from typing import Any

from worker.core.cohorts import COHORT_FIELDS, cohort_key, cohorts
from worker.core.spec import ExperimentSpec


def spec(**sections: Any) -> ExperimentSpec:
    doc: dict[str, Any] = {
        "spec_version": 1, "name": "p",
        "model": {"family": "mlp", "depth": 2, "width": 8},
        "data": {"kind": "spirals", "n_train": 64, "n_val": 16},
        "init": {"scheme": "normal"},
        "training": {"steps": 10, "batch_size": 16},
    }
    for name, fields in sections.items():
        doc[name] = {**doc.get(name, {}), **fields} if isinstance(fields, dict) else fields
    return ExperimentSpec.model_validate(doc)


def test_points_that_differ_only_in_the_cohort_fields_share_a_key() -> None:
    base = cohort_key(spec())
    assert base is not None
    same = [spec(name="other"), spec(training={"seed": 3}), spec(optimizer={"lr": 0.3}),
            spec(optimizer={"momentum": 0.5}), spec(init={"gain": 2.0})]
    assert {cohort_key(s) for s in same} == {base}
    assert len(COHORT_FIELDS) == 4
    others = [spec(model={"depth": 3}), spec(optimizer={"nesterov": True}),
              spec(training={"batch_size": 8}), spec(init={"scheme": "orthogonal"}),
              spec(optimizer={"weight_decay": 0.01})]
    keys = [cohort_key(s) for s in others]
    assert None not in keys and base not in keys and len(set(keys)) == len(keys)


def test_points_that_train_alone() -> None:
    assert cohort_key(spec(training={"seeds": [0, 1]})) is None  # batched already
    assert cohort_key(spec(training={"time_limit_s": 30})) is None  # fewer steps in a cohort


def test_cohorts_keep_order_and_cap_size_and_memory() -> None:
    a, b = spec(), spec(model={"depth": 3})
    specs = [a, b, a, a, spec(training={"seeds": [0, 1]}), b, a, a]
    assert cohorts(specs, max_size=8) == [[0, 2, 3, 6, 7], [1, 5], [4]]
    assert cohorts(specs, max_size=2) == [[0, 2], [1, 5], [3, 6], [4], [7]]
    assert cohorts(specs, max_size=1) == [[i] for i in range(8)]
    memory = [300, 100, 300, 300, 300, 100, 300, 300]
    assert cohorts(specs, max_size=8, memory_bytes=memory, max_memory_bytes=700) == [
        [0, 2], [1, 5], [3, 6], [4], [7]]
