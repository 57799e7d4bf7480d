"""Plots of a stored result (and of a sweep's table), drawn with matplotlib's Agg backend.

Everything here reads the result JSON (``worker/core/result.py`` documents it); nothing imports
torch. Figures are built with the object-oriented API (``Figure``), never ``pyplot``, so no
global figure state is shared between requests; rendering holds a lock because matplotlib's
font and text caches are not thread-safe and FastAPI runs sync routes in a thread pool.
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, Literal

import matplotlib

matplotlib.use("Agg")

from matplotlib.figure import Figure  # noqa: E402  (after the backend is chosen)
from matplotlib.ticker import MaxNLocator  # noqa: E402

from worker.core.errors import PlotUnavailable  # noqa: E402
from worker.core.sweeps import COLUMN, METRICS, Row, format_value  # noqa: E402

PlotFormat = Literal["png", "svg"]
MEDIA_TYPES: Final[dict[str, str]] = {"png": "image/png", "svg": "image/svg+xml"}
_RENDER_LOCK = threading.Lock()
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


def _figure(width: float = 6.4, height: float = 3.6) -> Figure:
    with matplotlib.rc_context(_RC):
        return Figure(figsize=(width, height), layout="constrained")


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
    probes = flow.get("probes") or []
    if not probes:
        raise PlotUnavailable("the gradient_flow section has no probes")
    layers: list[str] = flow.get("layers") or [
        str(i) for i in range(len(probes[0]["activation_grad_rms"]))
    ]
    grid = [[math.log10(v) if (v := _num(p["activation_grad_rms"][i])) > 0 else math.nan
             for p in probes] for i in range(len(layers))]
    fig = _figure(6.4, max(2.6, 0.28 * len(layers) + 1.4))
    ax = fig.add_subplot()
    image = ax.imshow(grid, aspect="auto", cmap="viridis", interpolation="nearest")
    ax.set_xticks(range(len(probes)), [str(p["step"]) for p in probes])
    ax.set_yticks(range(len(layers)), layers)
    ax.set_xlabel("step")
    ax.set_ylabel("layer (input first)")
    ax.grid(False)
    ax.set_title("Gradient flow: log10 RMS of dL/dh per layer")
    fig.colorbar(image, ax=ax, label="log10 RMS dL/dh")
    return fig


def gains(result: Mapping[str, Any]) -> Figure:
    """Per-layer gain (rms[l] / rms[l+1]) at initialization and at the end."""
    probes = _section(result, "gradient_flow", "probes", needs="enable the gradient_flow group")
    if not probes:
        raise PlotUnavailable("the gradient_flow section has no probes")
    fig = _figure()
    ax = fig.add_subplot()
    chosen = [probes[0]] if len(probes) == 1 else [probes[0], probes[-1]]
    for probe, marker in zip(chosen, ("o-", "s--"), strict=False):
        values = [_num(g) for g in probe["gains"]]
        label = "init (step 0)" if probe["step"] == 0 else f"end (step {probe['step']})"
        ax.plot(range(1, len(values) + 1), values, marker, label=label)
    ax.axhline(1.0, color="grey", linewidth=1)
    if _wide([_num(g) for p in chosen for g in p["gains"]] + [1.0]):
        ax.set_yscale("log")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("layer transition l -> l+1 (input side first)")
    ax.set_ylabel("gain rms[l] / rms[l+1]")
    ax.set_title("Per-layer gradient gain")
    ax.legend()
    return fig


def loss(result: Mapping[str, Any]) -> Figure:
    """Training and validation loss curves."""
    curves = _section(result, "curves", needs="the result has no curves")
    train = [_num(v) for v in curves.get("train_loss", [])]
    val = [_num(v) for v in curves.get("val_loss", [])]
    if not train and not val:
        raise PlotUnavailable("the result has no loss curve")
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(curves.get("step", []), train, label="train (batch mean)")
    if val:
        ax.plot(curves.get("eval_step", []), val, "o-", markersize=3, label="validation")
    if _wide(train + val):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title("Loss")
    ax.legend()
    return fig


def interpolation(result: Mapping[str, Any]) -> Figure:
    """Loss on the line from the initial to the final weights (monotonic interpolation)."""
    mli = _section(result, "linearity", "interpolation",
                   needs="enable the interpolation group (preset standard or full)")
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(mli["alphas"], [_num(v) for v in mli["loss"]], "o-", markersize=3)
    if mli.get("bump_alpha") is not None and mli.get("largest_bump", 0) > 0:
        ax.axvline(mli["bump_alpha"], color="tab:red", linestyle=":",
                   label=f"largest bump {mli['largest_bump']:.3g}")
        ax.legend()
    ax.set_xlabel("alpha: (1 - alpha) theta_0 + alpha theta_T")
    ax.set_ylabel("probe loss")
    verdict = "monotone" if mli.get("monotone") else "not monotone"
    ax.set_title(f"Linear interpolation init -> end ({verdict})")
    return fig


def alignment(result: Mapping[str, Any]) -> Figure:
    """Cosine between the negative gradient and the direction to the final weights."""
    data = _section(result, "trajectory", "alignment",
                    needs="enable the alignment group (preset standard or full)")
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(data["steps"], [_num(v) for v in data["cosine"]], "o-", markersize=3)
    ax.axhline(0.0, color="grey", linewidth=1)
    if data.get("mean") is not None:
        ax.axhline(data["mean"], color="tab:orange", linestyle="--",
                   label=f"mean {data['mean']:.3f}")
        ax.legend()
    ax.set_xlabel("step")
    ax.set_ylabel("cos(-grad, theta_T - theta_t)")
    ax.set_title("Alignment of the gradient with the way to the end")
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
    fig = _figure(6.4, 4.0)
    ax = fig.add_subplot()
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
    ax.set_xlabel(x)
    ax.set_ylabel(label)
    ax.set_title(f"{label} vs {x}")
    if len(groups) > 1 or column.healthy is not None:
        ax.legend(title=", ".join(series_columns) or None, fontsize=8)
    return fig
