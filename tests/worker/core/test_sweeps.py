"""Sweep expansion, dotted paths, point validation and the comparison table (no Redis)."""

from __future__ import annotations

import math

import pytest

from worker.core.errors import InvalidRequest, InvalidSweep, SweepTooLarge
from worker.core.sweeps import (
    PathError,
    check_size,
    expand,
    point_document,
    set_path,
    sort_rows,
    table_row,
    validate_points,
)

BASE = {
    "spec_version": 1,
    "name": "base",
    "model": {"family": "mlp", "depth": 2, "width": 8, "activation": "relu"},
    "data": {"kind": "spirals", "n_train": 64, "n_val": 16},
    "training": {"steps": 5, "batch_size": 16},
}


def test_grid_crosses_variants_then_axes_last_fastest():
    points = expand({"model.depth": [2, 8], "model.width": [4, 8]},
                    {"a": {"model.activation": "tanh"}, "b": {"model.activation": "relu"}})
    assert len(points) == 8
    assert points[1].values == {"variant": "a", "model.depth": 2, "model.width": 8}
    assert points[-1].overrides == {"model.activation": "relu", "model.depth": 8,
                                    "model.width": 8}


def test_zip_pairs_and_needs_equal_lengths():
    points = expand({"model.depth": [2, 8], "model.width": [4, 8]}, mode="zip")
    assert [p.values for p in points] == [{"model.depth": 2, "model.width": 4},
                                          {"model.depth": 8, "model.width": 8}]
    with pytest.raises(InvalidRequest, match="equal length"):
        expand({"model.depth": [2, 8], "model.width": [4]}, mode="zip")


def test_size_limits():
    assert check_size({"a": [1, 2, 3], "b": [1, 2]}, None, "grid", 6) == 6
    with pytest.raises(SweepTooLarge) as caught:
        check_size({"a": [1, 2, 3], "b": [1, 2, 3]}, None, "grid", 6)
    assert (caught.value.limit, caught.value.limit_value, caught.value.value) == (
        "max_sweep_points", 6, 9)
    assert check_size({"a": [1, 2, 3], "b": [1, 2, 3]}, None, "zip", 6) == 3


def test_set_path_creates_objects_and_indexes_lists():
    doc = {"model": {"layers": [{"type": "linear", "out": 4}]}}
    set_path(doc, "model.layers.0.out", 16)
    set_path(doc, "init.gain", 0.5)
    assert doc == {"model": {"layers": [{"type": "linear", "out": 16}]},
                   "init": {"gain": 0.5}}
    for bad in ("model.layers.3.out", "model.layers.x", "model.layers.0.out.deeper", "a..b"):
        with pytest.raises(PathError):
            set_path(doc, bad, 1)


def test_point_documents_get_their_own_name_and_keep_the_base():
    (point,) = expand({"model.depth": [4]})
    doc = point_document(BASE, point)
    assert doc["name"] == "base [model.depth=4]" and doc["model"]["depth"] == 4
    assert BASE["model"]["depth"] == 2


def test_validation_lists_every_bad_point_with_union_tags_removed():
    points = expand({"model.depth": [2, 0], "data.n_train": [64, "x"]})
    with pytest.raises(InvalidSweep) as caught:
        validate_points(BASE, points, lambda spec: None)
    fields = sorted(e["field"] for e in caught.value.errors)
    assert fields == ["points.1.data.n_train", "points.2.model.depth", "points.3.data.n_train",
                      "points.3.model.depth"]


RESULT = {
    "summary": {"outcome": "completed", "final_train_loss": 0.5, "final_val_loss": 0.6},
    "gradient_flow": {"probes": [{"end_to_end_ratio": 1e-6, "verdict": "vanishing"},
                                 {"end_to_end_ratio": 2e-6, "verdict": "vanishing"}]},
    "trajectory": {"alignment": {"mean": 0.3}},
    "linearity": {"interpolation": {"largest_bump": 0.01}},
    "findings": [{"severity": "critical"}, {"severity": "warning"}, {"severity": "info"},
                 {"severity": "info"}],
}


def test_a_row_reads_the_result():
    row = table_row(3, {"model.depth": 10}, ["old", "new"], "succeeded", RESULT)
    assert (row.job_id, row.previous_job_ids) == ("new", ["old"])
    assert (row.grad_ratio_init, row.grad_ratio_end, row.verdict_init) == (
        1e-6, 2e-6, "vanishing")
    assert (row.alignment_mean, row.mli_largest_bump) == (0.3, 0.01)
    assert (row.findings_critical, row.findings_warning, row.findings_info) == (1, 1, 2)
    empty = table_row(0, {}, ["j"], "queued", None)
    assert empty.outcome is None and empty.findings_info is None


def test_sorting_puts_nulls_last_both_ways_and_keeps_ties_in_point_order():
    rows = [table_row(i, {"v": v}, [f"j{i}"], "succeeded",
                      {"gradient_flow": {"probes": [{"end_to_end_ratio": r}]}})
            for i, (v, r) in enumerate([("b", 0.5), ("a", None), ("b", 0.1), ("c", math.nan)])]
    assert [r.point for r in sort_rows(rows, "grad_ratio_init")] == [2, 0, 1, 3]
    assert [r.point for r in sort_rows(rows, "grad_ratio_init", True)] == [0, 2, 1, 3]
    assert [r.point for r in sort_rows(rows, "v", True)] == [3, 0, 2, 1]


def test_the_column_list_gives_the_table_its_names_scales_and_plots():
    from worker.core.sweeps import COLUMNS, LOG_COLUMNS, METRICS, RESULT_COLUMNS, TABLE, Row

    assert COLUMNS == tuple(c.name for c in TABLE) and len(set(COLUMNS)) == len(COLUMNS)
    assert set(METRICS) == {c.name for c in TABLE if c.plot is not None}
    assert all(c.label and c.read is not None for c in TABLE if c.plot is not None)
    assert LOG_COLUMNS <= set(METRICS)
    # a row answers every column: the result columns as attributes, null without a result
    row = table_row(0, {"v": 1}, ["j"], "queued", None)
    assert [row.get(c) for c in COLUMNS] == [0, "queued", *[None] * len(RESULT_COLUMNS), "j"]
    with pytest.raises(AttributeError):
        row.not_a_column  # noqa: B018
    assert isinstance(table_row(0, {}, [], "queued", RESULT), Row)
