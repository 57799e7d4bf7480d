"""Sweeps: one base spec, axes over its fields, one experiment per point (torch-free).

An axis varies one spec field, named by its dotted path (``model.depth``; list items by index,
``model.layers.0.width``). A *variant* axis sets several fields at once under one label
(``"relu+residual": {"model.activation": "relu", "model.residual": true}``): the families of
the seed's comparison are variants, depth is a plain axis. ``grid`` crosses every axis
(variants first, then the axes in the order given); ``zip`` pairs the i-th values of all axes.

Every point is validated exactly as ``POST /v1/experiments`` validates a body (strict spec,
shapes, server budgets) before anything is written: one bad point refuses the whole sweep with
an ``InvalidSweep`` that lists every problem with its point and field path.

The comparison table (``table_row``) reads a few numbers from each point's result JSON; its
columns are ``TABLE`` (plus the varied fields), each sortable: the one list of them, with
heading, description, type, plot label and scale, which the API schema, the plots and the
HTML report read.
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


#: Checks a point's spec: raises its first problem (``InvalidRequest``), or returns a list of
#: every problem found (``worker.core.budgets.spec_problems``); any other return: none.
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
            checked = check_budgets(spec)
        except InvalidRequest as exc:
            checked = [exc]
        problems = [p for p in checked if isinstance(p, InvalidRequest)] if isinstance(
            checked, list) else []
        for problem in problems:
            if isinstance(problem, BudgetExceeded):
                add(problem.field, str(problem), "budget-exceeded", limit=problem.limit,
                    limit_value=problem.limit_value, value=problem.value)
            else:
                add(problem.field, str(problem), "invalid-request")
        if not problems:
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

ResultReader = Callable[[Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Column:
    """One column of the comparison table besides the varied fields: the one list the table,
    the API schema (``SweepRow``), the plots and the HTML report are drawn from."""

    name: str
    header: str  # short heading in the HTML report's table
    description: str  # the API schema's text
    value_type: type[int] | type[float] | type[str]  # the JSON type of its values
    read: ResultReader | None = None  # its value from a point's result; None: not a metric
    label: str | None = None  # plot axis label (plotted columns)
    plot: int | None = None  # position among the sweep's plots; None: not plotted
    log_scale: bool = False  # natural scale logarithmic: plots use a log axis
    healthy: tuple[float, float] | None = None  # the band plots shade as healthy


def _at(*path: str) -> ResultReader:
    """The value at ``path`` in a result (None where any part is missing)."""
    def read(result: Mapping[str, Any]) -> Any:
        node: Mapping[str, Any] = result
        for key in path[:-1]:
            node = node.get(key) or {}
        return node.get(path[-1])
    return read


def _flow_probe(index: int, key: str) -> ResultReader:
    """``key`` of the first (0) or last (-1) gradient-flow probe."""
    def read(result: Mapping[str, Any]) -> Any:
        probes = (result.get("gradient_flow") or {}).get("probes") or []
        return probes[index].get(key) if probes else None
    return read


def _findings(severity: str) -> ResultReader:
    def read(result: Mapping[str, Any]) -> int:
        return sum(1 for f in result.get("findings") or [] if f.get("severity") == severity)
    return read


_HEALTHY_GAIN = (1e-1, 1e1)

#: The table's columns besides the varied fields, in display order.
TABLE: Final[tuple[Column, ...]] = (
    Column("point", "#", "Position of the point in the sweep.", int),
    Column("status", "status", "Status of the current job.", str),
    Column("outcome", "outcome", "completed, diverged, stopped or timed_out.", str,
           _at("summary", "outcome")),
    Column("final_train_loss", "train loss", "Final training loss.", float,
           _at("summary", "final_train_loss"), "final training loss", plot=2),
    Column("final_val_loss", "val loss", "Final validation loss.", float,
           _at("summary", "final_val_loss"), "final validation loss", plot=3),
    Column("grad_ratio_init", "grad ratio @0",
           "End-to-end gradient ratio (first / last observed layer) at step 0.", float,
           _flow_probe(0, "end_to_end_ratio"), "end-to-end gradient ratio at step 0", plot=0,
           log_scale=True, healthy=_HEALTHY_GAIN),
    Column("grad_ratio_end", "grad ratio @end", "End-to-end gradient ratio at the end.", float,
           _flow_probe(-1, "end_to_end_ratio"), "end-to-end gradient ratio at the end", plot=1,
           log_scale=True, healthy=_HEALTHY_GAIN),
    Column("verdict_init", "verdict @0", "Gradient-flow verdict at step 0.", str,
           _flow_probe(0, "verdict")),
    Column("alignment_mean", "alignment",
           "Mean cosine between -gradient and the way to the final weights "
           "(needs the alignment group).", float,
           _at("trajectory", "alignment", "mean"), "mean alignment", plot=4),
    Column("mli_largest_bump", "MLI bump",
           "Largest bump of the loss on the line from init to the end weights "
           "(needs the interpolation group).", float,
           _at("linearity", "interpolation", "largest_bump"), "MLI largest bump", plot=5),
    Column("findings_critical", "crit", "Findings of severity critical.", int,
           _findings("critical")),
    Column("findings_warning", "warn", "Findings of severity warning.", int,
           _findings("warning")),
    Column("findings_info", "info", "Findings of severity info.", int, _findings("info")),
    Column("job_id", "job", "The point's current job.", str),
)
COLUMN: Final[dict[str, Column]] = {c.name: c for c in TABLE}
#: The columns read from a point's result (null until its job has one).
RESULT_COLUMNS: Final[tuple[Column, ...]] = tuple(c for c in TABLE if c.read is not None)
#: Column names, in display order.
COLUMNS: Final[tuple[str, ...]] = tuple(c.name for c in TABLE)
#: Numeric columns whose natural scale is logarithmic (plots use a log axis for them).
LOG_COLUMNS: Final = frozenset(c.name for c in TABLE if c.log_scale)
#: The plotted columns, in plot order.
METRICS: Final[tuple[str, ...]] = tuple(
    c.name for c in sorted((c for c in TABLE if c.plot is not None), key=lambda c: c.plot or 0)
)


@dataclass
class Row:
    """One point's line in the comparison table; the result columns read as attributes too
    (``row.grad_ratio_init``)."""

    point: int
    values: dict[str, Any]
    job_id: str | None
    status: str
    previous_job_ids: list[str] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)  # the result columns

    def __getattr__(self, name: str) -> Any:
        # only called for names that are not attributes: the result columns
        if name in COLUMN and COLUMN[name].read is not None:
            return self.__dict__.get("metrics", {}).get(name)
        raise AttributeError(name)

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
    if result:
        row.metrics = {c.name: c.read(result) for c in RESULT_COLUMNS if c.read is not None}
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
