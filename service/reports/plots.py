"""Plots of a stored result (and of a sweep's table), drawn with matplotlib's Agg backend.

Everything here reads the result JSON (``worker/core/result.py`` documents it); nothing imports
torch. Figures are built with the object-oriented API (``Figure``), never ``pyplot``, so no
global figure state is shared between requests; rendering holds a lock because matplotlib's
font and text caches are not thread-safe. The API draws on a thread of its own, off the
request threads (``service/reports/render.py``).

What a figure draws is capped (``MAX_HEATMAP_COLUMNS`` probes, ``MAX_LINE_POINTS`` points per
line, ``MAX_TICK_LABELS`` tick labels), evenly spread with the first and the last kept: a run
probed at every step has thousands of probes, more than a 6-inch figure can show, and each
drawn cell and label costs time.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

import matplotlib

matplotlib.use("Agg")

from matplotlib.axes import Axes  # noqa: E402  (after the backend is chosen)
from matplotlib.figure import Figure  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from worker.core.errors import PlotUnavailable  # noqa: E402
from worker.core.probe_schedule import evenly_spaced  # noqa: E402
from worker.core.sweeps import COLUMN, METRICS, Row, format_value  # noqa: E402

PlotFormat = Literal["png", "svg"]
MEDIA_TYPES: Final[dict[str, str]] = {"png": "image/png", "svg": "image/svg+xml"}
_RENDER_LOCK = threading.Lock()
#: Probes (columns) a heatmap draws at most.
MAX_HEATMAP_COLUMNS: Final = 200
#: Points one line draws at most.
MAX_LINE_POINTS: Final = 2000
#: Tick labels on an axis of probe steps at most.
MAX_TICK_LABELS: Final = 12
_RC: Final[dict[Any, Any]] = {
    "svg.fonttype": "none",  # text stays text: smaller files, searchable titles
    "svg.hashsalt": "trainability",  # stable ids: the same result gives the same SVG
    "font.size": 9,
    "axes.grid": True,
    "grid.alpha": 0.3,
}


def render(fig: Figure, fmt: PlotFormat) -> bytes:
    """The figure as PNG or SVG bytes."""
    buffer = io.BytesIO()
    with _RENDER_LOCK, matplotlib.rc_context(_RC):
        fig.savefig(buffer, format=fmt, dpi=100, bbox_inches="tight",
                    metadata={"Date": None} if fmt == "svg" else None)
    return buffer.getvalue()


def inline_svg(fig: Figure) -> str:
    """SVG markup to put inside an HTML page (no XML prolog or doctype)."""
    text = render(fig, "svg").decode()
    return text[text.index("<svg"):]


def _axes(width: float = 6.4, height: float = 3.6) -> tuple[Figure, Axes]:
    """A new figure (made under the house style) and its one set of axes."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height), layout="constrained")
    return fig, fig.add_subplot()


def _num(value: Any) -> float:
    """A float for plotting; null and non-finite become NaN (gaps)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return math.nan
    return float(value) if math.isfinite(value) else math.nan


def _positive(values: Sequence[float]) -> bool:
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and all(v > 0 for v in finite)


def _wide(values: Sequence[float]) -> bool:
    """Positive and spread over more than a factor 10: worth a log axis."""
    finite = [v for v in values if math.isfinite(v)]
    return _positive(finite) and max(finite) / min(finite) > 10


def thin(values: Sequence[Any], keep: int) -> list[Any]:
    """At most ``keep`` of ``values``, evenly spread, the first and the last kept (parallel
    sequences of one length keep the same positions)."""
    return [values[i] for i in evenly_spaced(len(values), keep)]


def _section(result: Mapping[str, Any], *path: str, needs: str) -> Any:
    node: Any = result
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
        if node is None:
            raise PlotUnavailable(f"this result has no {'.'.join(path)}; {needs}")
    return node


# --- one experiment ----------------------------------------------------------------------

def gradient_flow_heatmap(result: Mapping[str, Any]) -> Figure:
    """Layer x probe step: log10 of the RMS of dL/dh per observed layer."""
    flow = _section(result, "gradient_flow", needs="enable the gradient_flow group")
    probes = thin(flow.get("probes") or [], MAX_HEATMAP_COLUMNS)
    if not probes:
        raise PlotUnavailable("the gradient_flow section has no probes")
    layers: list[str] = flow.get("layers") or [
        str(i) for i in range(len(probes[0]["activation_grad_rms"]))
    ]
    grid = [[math.log10(v) if (v := _num(p["activation_grad_rms"][i])) > 0 else math.nan
             for p in probes] for i in range(len(layers))]
    fig, ax = _axes(6.4, max(2.6, 0.28 * len(layers) + 1.4))
    image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    ticks = evenly_spaced(len(probes), MAX_TICK_LABELS)
    ax.set_xticks(ticks, [str(probes[i]["step"]) for i in ticks])
    ax.set_yticks(range(len(layers)), layers)
    ax.grid(False)
    ax.set(xlabel="step", ylabel="layer (input first)",
           title="Gradient flow: log10 RMS of dL/dh per layer")
    fig.colorbar(image, ax=ax, label="log10 RMS dL/dh")
    return fig


def through_time(recurrent: Sequence[Mapping[str, Any]]) -> Figure:
    """A recurrent design's gradient through time: RMS of dL/dh_t over t, at init and at the
    end, per recurrent layer (the gains across one recurrent layer say nothing)."""
    chosen = [recurrent[0]] if len(recurrent) == 1 else [recurrent[0], recurrent[-1]]
    fig, ax = _axes()
    for probe, style in zip(chosen, ("-", "--"), strict=False):
        when = "init" if probe["step"] == 0 else f"step {probe['step']}"
        for layer in probe.get("layers") or []:
            rms = [_num(v) for v in layer.get("grad_rms") or []]
            ax.plot(range(1, len(rms) + 1), rms, style, label=f"{layer['layer']} ({when})")
    ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="time step t (the loss is read at the end)", ylabel="RMS of dL/dh_t",
           title="Gradient through time")
    ax.legend(fontsize=8)
    return fig


def gains(result: Mapping[str, Any]) -> Figure:
    """Per-layer gain (rms[l] / rms[l+1]) at initialization and at the end; for a recurrent
    design, the gradient through time instead."""
    recurrent = (result.get("gradient_flow") or {}).get("recurrent")
    if recurrent:
        return through_time(recurrent)
    probes = _section(result, "gradient_flow", "probes", needs="enable the gradient_flow group")
    if not probes:
        raise PlotUnavailable("the gradient_flow section has no probes")
    fig, ax = _axes()
    chosen = [probes[0]] if len(probes) == 1 else [probes[0], probes[-1]]
    for probe, marker in zip(chosen, ("o-", "s--"), strict=False):
        values = [_num(g) for g in probe["gains"]]
        label = "init (step 0)" if probe["step"] == 0 else f"end (step {probe['step']})"
        ax.plot(range(1, len(values) + 1), values, marker, label=label)
    ax.axhline(1.0, color="grey", linewidth=1)
    if _wide([_num(g) for p in chosen for g in p["gains"]] + [1.0]):
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="layer transition l -> l+1 (input side first)", ylabel="gain rms[l] / rms[l+1]",
           title="Per-layer gradient gain")
    ax.legend()
    return fig


def loss(result: Mapping[str, Any]) -> Figure:
    """Training and validation loss curves."""
    curves = _section(result, "curves", needs="the result has no curves")
    train = [_num(v) for v in thin(curves.get("train_loss", []), MAX_LINE_POINTS)]
    val = [_num(v) for v in thin(curves.get("val_loss", []), MAX_LINE_POINTS)]
    if not train and not val:
        raise PlotUnavailable("the result has no loss curve")
    fig, ax = _axes()
    ax.plot(thin(curves.get("step", []), MAX_LINE_POINTS), train, label="train (batch mean)")
    if val:
        ax.plot(thin(curves.get("eval_step", []), MAX_LINE_POINTS), val, "o-", markersize=3,
                label="validation")
    if _wide(train + val):
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss", title="Loss")
    ax.legend()
    return fig


def interpolation(result: Mapping[str, Any]) -> Figure:
    """Loss on the line from the initial to the final weights (monotonic interpolation)."""
    mli = _section(result, "linearity", "interpolation",
                   needs="enable the interpolation group (preset standard or full)")
    fig, ax = _axes()
    ax.plot(mli["alphas"], [_num(v) for v in mli["loss"]], "o-", markersize=3)
    if mli.get("bump_alpha") is not None and mli.get("largest_bump", 0) > 0:
        ax.axvline(mli["bump_alpha"], color="tab:red", linestyle=":",
                   label=f"largest bump {mli['largest_bump']:.3g}")
        ax.legend()
    verdict = "monotone" if mli.get("monotone") else "not monotone"
    ax.set(xlabel="alpha: (1 - alpha) theta_0 + alpha theta_T", ylabel="probe loss",
           title=f"Linear interpolation init -> end ({verdict})")
    return fig


def alignment(result: Mapping[str, Any]) -> Figure:
    """Cosine between the negative gradient and the direction to the final weights."""
    data = _section(result, "trajectory", "alignment",
                    needs="enable the alignment group (preset standard or full)")
    fig, ax = _axes()
    ax.plot(thin(data["steps"], MAX_LINE_POINTS),
            [_num(v) for v in thin(data["cosine"], MAX_LINE_POINTS)], "o-", markersize=3)
    ax.axhline(0.0, color="grey", linewidth=1)
    if data.get("mean") is not None:
        ax.axhline(data["mean"], color="tab:orange", linestyle="--",
                   label=f"mean {data['mean']:.3f}")
        ax.legend()
    ax.set(xlabel="step", ylabel="cos(-grad, theta_T - theta_t)",
           title="Alignment of the gradient with the way to the end")
    return fig


EXPERIMENT_PLOTS: Final[dict[str, Callable[[Mapping[str, Any]], Figure]]] = {
    "gradient_flow_heatmap": gradient_flow_heatmap,
    "gains": gains,
    "loss": loss,
    "interpolation": interpolation,
    "alignment": alignment,
}


def experiment_plot(name: str, result: Mapping[str, Any]) -> Figure:
    if name not in EXPERIMENT_PLOTS:
        raise PlotUnavailable(
            f"no plot named {name!r}; plots: {', '.join(EXPERIMENT_PLOTS)}"
        )
    return EXPERIMENT_PLOTS[name](result)


# --- a sweep -------------------------------------------------------------------------------

def _numeric(values: Sequence[Any]) -> bool:
    return all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)


def fmt_tick(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def sweep_x_axis(rows: Sequence[Row], varied: Sequence[str]) -> str | None:
    """The varied column to put on the x axis: the first numeric one, else the first one."""
    for column in varied:
        if _numeric([r.values.get(column) for r in rows]):
            return column
    return varied[0] if varied else None


def sweep_plot(metric: str, rows: Sequence[Row], varied: Sequence[str],
               x: str | None = None) -> Figure:
    """``metric`` against one varied column, one line per combination of the others."""
    if metric not in METRICS:
        raise PlotUnavailable(f"no sweep plot named {metric!r}; plots: {', '.join(METRICS)}")
    x = x or sweep_x_axis(rows, varied)
    if x is None or x not in varied:
        raise PlotUnavailable(f"x must be a varied column: {', '.join(varied)}")
    series_columns = [c for c in varied if c != x]
    numeric_x = _numeric([r.values.get(x) for r in rows])
    categories = list(dict.fromkeys(format_value(r.values.get(x)) for r in rows))
    groups: dict[str, list[Row]] = {}
    for row in sorted(rows, key=lambda r: r.point):
        label = ", ".join(format_value(row.values.get(c)) for c in series_columns) or metric
        groups.setdefault(label, []).append(row)
    fig, ax = _axes(6.4, 4.0)
    every: list[float] = []
    for label, members in groups.items():
        xs = [_num(r.values.get(x)) if numeric_x else categories.index(format_value(
              r.values.get(x))) for r in members]
        ys = [_num(r.get(metric)) for r in members]
        pairs = sorted(zip(xs, ys, strict=True))
        every += ys
        ax.plot([p[0] for p in pairs], [p[1] for p in pairs], "o-", label=label)
    if not any(math.isfinite(v) for v in every):
        raise PlotUnavailable(f"no point has a value for {metric} yet")
    column = COLUMN[metric]
    if column.log_scale and _positive(every):
        ax.set_yscale("log")
    if column.healthy is not None:
        low, high = column.healthy
        ax.axhspan(low, high, color="tab:green", alpha=0.08,
                   label=f"healthy band [{low:g}, {high:g}]")
    if not numeric_x:
        ax.set_xticks(range(len(categories)), categories)
    elif len(categories) <= 12:  # the swept values themselves, e.g. depth 2, 8, 16
        ticks = sorted({_num(r.values.get(x)) for r in rows})
        ax.set_xticks(ticks, [fmt_tick(t) for t in ticks])
    label = column.label or metric
    ax.set(xlabel=x, ylabel=label, title=f"{label} vs {x}")
    if len(groups) > 1 or column.healthy is not None:
        ax.legend(title=", ".join(series_columns) or None, fontsize=8)
    return fig


# --- several experiments (the compare page) ------------------------------------------------

Runs = Sequence[tuple[str, Mapping[str, Any]]]  # (label, result) per experiment


def overlay_gradient_flow(runs: Runs) -> Figure:
    """RMS of dL/dh per layer at initialization (the step-0 probe), one line per experiment."""
    fig, ax = _axes(6.4, 4.0)
    every: list[float] = []
    for label, result in runs:
        probes = (result.get("gradient_flow") or {}).get("probes") or []
        if probes and probes[0].get("activation_grad_rms"):
            rms = [_num(v) for v in probes[0]["activation_grad_rms"]]
            ax.plot(range(1, len(rms) + 1), rms, "o-", markersize=3, label=label)
            every += rms
    if not any(math.isfinite(v) for v in every):
        raise PlotUnavailable("none of these results has a gradient_flow probe at step 0")
    if _positive(every):
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set(xlabel="layer (input side first)", ylabel="RMS of dL/dh at step 0",
           title="Gradient flow at initialization")
    ax.legend(fontsize=8)
    return fig


def overlay_loss(runs: Runs) -> Figure:
    """Training loss (lines) and validation loss (dashed, markers), one colour per experiment."""
    fig, ax = _axes(6.4, 4.0)
    every: list[float] = []
    for label, result in runs:
        curves = result.get("curves") or {}
        train = [_num(v) for v in curves.get("train_loss") or []]
        val = [_num(v) for v in curves.get("val_loss") or []]
        if not train and not val:
            continue
        (line,) = ax.plot(curves.get("step", []), train, label=label)
        if val:
            ax.plot(curves.get("eval_step", []), val, "o--", markersize=3,
                    color=line.get_color())
        every += train + val
    if not any(math.isfinite(v) for v in every):
        raise PlotUnavailable("none of these results has a loss curve")
    if _wide(every):
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss (train: line, validation: dashed)", title="Loss")
    ax.legend(fontsize=8)
    return fig
