"""Sweeps: one base spec, axes over its fields, one experiment per point (torch-free).

An axis varies one spec field, named by its dotted path (``model.depth``; list items by index,
``model.layers.0.width``). A *variant* axis sets several fields at once under one label
(``"relu+residual": {"model.activation": "relu", "model.residual": true}``): the families of
the seed's comparison are variants, depth is a plain axis. ``grid`` crosses every axis
(variants first, then the axes in the order given); ``zip`` pairs the i-th values of all axes.

Every point is validated exactly as ``POST /v1/experiments`` validates a body (strict spec,
shapes, server budgets) before anything is written: one bad point refuses the whole sweep with
an ``InvalidSweep`` that lists every problem with its point and field path.

The comparison table (``table_row``) reads a few numbers from each point's result JSON; the
names of its columns are ``COLUMNS`` (plus the varied fields), each sortable.
"""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from pydantic import ValidationError

from worker.core.errors import BudgetExceeded, InvalidRequest, InvalidSweep, SweepTooLarge
from worker.core.field_paths import json_path
from worker.core.spec import ExperimentSpec

SweepMode = Literal["grid", "zip"]
#: The column that holds a variant's label.
VARIANT: Final = "variant"
MAX_NAME_CHARS: Final = 200


@dataclass(frozen=True)
class Point:
    """One point of a sweep: its position, the values that vary, and the fields they set."""

    index: int
    values: dict[str, Any]
    overrides: dict[str, Any]

    def label(self) -> str:
        return ", ".join(f"{k}={format_value(v)}" for k, v in self.values.items())


def format_value(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def expand(
    axes: Mapping[str, Sequence[Any]],
    variants: Mapping[str, Mapping[str, Any]] | None = None,
    mode: SweepMode = "grid",
) -> list[Point]:
    """The points of a sweep, in order (the last axis varies fastest in ``grid``)."""
    columns: list[tuple[str, list[tuple[Any, dict[str, Any]]]]] = []
    if variants:
        columns.append((VARIANT, [(label, dict(fields)) for label, fields in variants.items()]))
    for path, axis_values in axes.items():
        columns.append((path, [(value, {path: value}) for value in axis_values]))
    if not columns:
        return []
    if mode == "zip":
        lengths = {name: len(choices) for name, choices in columns}
        if len(set(lengths.values())) > 1:
            raise InvalidRequest(
                "zip mode needs axes of equal length; got "
                + ", ".join(f"{k}: {n}" for k, n in lengths.items()),
                field="axes",
            )
        combos: list[tuple[tuple[Any, dict[str, Any]], ...]] = list(
            zip(*(choices for _, choices in columns), strict=True)
        )
    else:
        combos = list(itertools.product(*(choices for _, choices in columns)))
    points = []
    for index, combo in enumerate(combos):
        values = {name: value for (name, _), (value, _) in zip(columns, combo, strict=True)}
        overrides: dict[str, Any] = {}
        for _, chosen in combo:
            overrides.update(chosen)
        points.append(Point(index=index, values=values, overrides=overrides))
    return points


def count_points(
    axes: Mapping[str, Sequence[Any]], variants: Mapping[str, Any] | None, mode: SweepMode
) -> int:
    """How many points ``expand`` would make (without making them)."""
    sizes = [len(v) for v in axes.values()] + ([len(variants)] if variants else [])
    if not sizes:
        return 0
    return max(sizes) if mode == "zip" else math.prod(sizes)


class PathError(ValueError):
    pass


def set_path(doc: dict[str, Any], path: str, value: Any) -> None:
    """Set ``doc[a][b][c] = value`` for ``path`` ``a.b.c``; missing objects are created."""
    parts = path.split(".")
    if not path or any(not p for p in parts):
        raise PathError("a path is dotted field names, e.g. model.depth")
    node: Any = doc
    for i, part in enumerate(parts):
        last = i == len(parts) - 1
        where = ".".join(parts[: i + 1])
        if isinstance(node, dict):
            if last:
                node[part] = copy.deepcopy(value)
            else:
                if part not in node or node[part] is None:
                    node[part] = {}
                node = node[part]
        elif isinstance(node, list):
            if not part.isdigit() or int(part) >= len(node):
                raise PathError(f"{where}: no item {part} in a list of {len(node)}")
            if last:
                node[int(part)] = copy.deepcopy(value)
            else:
                node = node[int(part)]
        else:
            raise PathError(f"{'.'.join(parts[:i]) or path} is a value, not an object")


def point_name(base_name: str | None, point: Point) -> str:
    name = f"{base_name or 'sweep'} [{point.label()}]"
    return name if len(name) <= MAX_NAME_CHARS else name[: MAX_NAME_CHARS - 1] + "…"


def point_document(base: Mapping[str, Any], point: Point) -> dict[str, Any]:
    """The spec document of a point: the base with the point's fields set and its own name."""
    doc = copy.deepcopy(dict(base))
    for path, value in point.overrides.items():
        set_path(doc, path, value)
    if "name" not in point.overrides:
        doc["name"] = point_name(base.get("name"), point)
    return doc


BudgetCheck = Callable[[ExperimentSpec], object]


@dataclass
class ValidatedPoint:
    point: Point
    spec: ExperimentSpec


def validate_points(
    base: Mapping[str, Any], points: Sequence[Point], check_budgets: BudgetCheck
) -> list[ValidatedPoint]:
    """Every point as a validated spec, or ``InvalidSweep`` listing every problem found."""
    errors: list[dict[str, Any]] = []
    valid: list[ValidatedPoint] = []
    for point in points:
        def add(path: str, msg: str, type_: str, point: Point = point, **extra: Any) -> None:
            errors.append({
                "field": f"points.{point.index}" + (f".{path}" if path else ""),
                "loc": ["body", "points", point.index, *path.split(".")] if path
                else ["body", "points", point.index],
                "in": "body", "msg": msg, "type": type_,
                "point": point.index, "values": point.values, **extra,
            })

        try:
            doc = point_document(base, point)
        except PathError as exc:
            add("", str(exc), "invalid-path")
            continue
        try:
            spec = ExperimentSpec.model_validate_json(json.dumps(doc))
        except ValidationError as exc:
            for err in exc.errors():
                path = ".".join(str(p) for p in json_path(list(err["loc"]), doc))
                add(path, err["msg"], err["type"])
            continue
        try:
            check_budgets(spec)
        except BudgetExceeded as exc:
            add(exc.field, str(exc), "budget-exceeded", limit=exc.limit,
                limit_value=exc.limit_value, value=exc.value)
            continue
        except InvalidRequest as exc:
            add(exc.field, str(exc), "invalid-request")
            continue
        valid.append(ValidatedPoint(point=point, spec=spec))
    if errors:
        raise InvalidSweep(errors)
    return valid


def check_size(
    axes: Mapping[str, Sequence[Any]],
    variants: Mapping[str, Any] | None,
    mode: SweepMode,
    max_points: int,
) -> int:
    n = count_points(axes, variants, mode)
    if n > max_points:
        raise SweepTooLarge(limit_value=max_points, value=n)
    if n == 0:
        raise InvalidRequest("a sweep needs at least one axis or variant", field="axes")
    return n


# --- the comparison table ------------------------------------------------------------------

#: Columns of a table row besides the varied fields, in display order.
COLUMNS: Final[tuple[str, ...]] = (
    "point",
    "status",
    "outcome",
    "final_train_loss",
    "final_val_loss",
    "grad_ratio_init",
    "grad_ratio_end",
    "verdict_init",
    "alignment_mean",
    "mli_largest_bump",
    "findings_critical",
    "findings_warning",
    "findings_info",
    "job_id",
)
#: Numeric columns whose natural scale is logarithmic (plots use a log axis for them).
LOG_COLUMNS: Final = frozenset({"grad_ratio_init", "grad_ratio_end"})
METRICS: Final[tuple[str, ...]] = (
    "grad_ratio_init",
    "grad_ratio_end",
    "final_train_loss",
    "final_val_loss",
    "alignment_mean",
    "mli_largest_bump",
)


@dataclass
class Row:
    """One point's line in the comparison table."""

    point: int
    values: dict[str, Any]
    job_id: str | None
    status: str
    previous_job_ids: list[str] = field(default_factory=list)
    outcome: str | None = None
    final_train_loss: float | None = None
    final_val_loss: float | None = None
    grad_ratio_init: float | None = None
    grad_ratio_end: float | None = None
    verdict_init: str | None = None
    alignment_mean: float | None = None
    mli_largest_bump: float | None = None
    findings_critical: int | None = None
    findings_warning: int | None = None
    findings_info: int | None = None

    def get(self, column: str) -> Any:
        if column in self.values:
            return self.values[column]
        return getattr(self, column)


def table_row(
    point: int,
    values: dict[str, Any],
    job_ids: Sequence[str],
    status: str,
    result: Mapping[str, Any] | None,
) -> Row:
    """A row from a point's latest job (``status``) and its result JSON (when it has one)."""
    row = Row(point=point, values=values, job_id=job_ids[-1] if job_ids else None,
              status=status, previous_job_ids=list(job_ids[:-1]))
    if not result:
        return row
    summary = result.get("summary") or {}
    row.outcome = summary.get("outcome")
    row.final_train_loss = summary.get("final_train_loss")
    row.final_val_loss = summary.get("final_val_loss")
    probes = (result.get("gradient_flow") or {}).get("probes") or []
    if probes:
        row.grad_ratio_init = probes[0].get("end_to_end_ratio")
        row.verdict_init = probes[0].get("verdict")
        row.grad_ratio_end = probes[-1].get("end_to_end_ratio")
    alignment = (result.get("trajectory") or {}).get("alignment") or {}
    row.alignment_mean = alignment.get("mean")
    interpolation = (result.get("linearity") or {}).get("interpolation") or {}
    row.mli_largest_bump = interpolation.get("largest_bump")
    findings = result.get("findings") or []
    row.findings_critical = sum(1 for f in findings if f.get("severity") == "critical")
    row.findings_warning = sum(1 for f in findings if f.get("severity") == "warning")
    row.findings_info = sum(1 for f in findings if f.get("severity") == "info")
    return row


def sortable_columns(varied: Sequence[str]) -> list[str]:
    return [*varied, *COLUMNS]


def sort_rows(rows: list[Row], column: str, descending: bool = False) -> list[Row]:
    """Rows ordered by ``column``; missing values (null) always last, ties by point."""
    def key(row: Row) -> tuple[int, Any]:
        value = row.get(column)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return (1, 0)
        if isinstance(value, bool | int | float):
            return (0, (0, float(value)))
        return (0, (1, format_value(value)))

    present = sorted((r for r in rows if key(r)[0] == 0), key=lambda r: r.point)
    missing = sorted((r for r in rows if key(r)[0] == 1), key=lambda r: r.point)
    present.sort(key=lambda r: key(r)[1], reverse=descending)  # stable: ties by point
    return present + missing
