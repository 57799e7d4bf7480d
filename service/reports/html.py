"""HTML reports: one self-contained page per experiment or sweep, plots inlined as SVG.

Every value that came from a client or a result is escaped. A plot whose data is missing
(e.g. interpolation under preset ``basic``) is left out with a note, never an error.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from service.reports.plots import EXPERIMENT_PLOTS, inline_svg, sweep_plot, sweep_x_axis
from worker.core.errors import PlotUnavailable
from worker.core.sweeps import METRICS, TABLE, Row, format_value
from worker.jobs.records import JobRecord

_STYLE = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 24px;
       color: #1d2327; max-width: 1150px; }
h1 { font-size: 22px; margin-bottom: 4px; } h2 { font-size: 17px; margin-top: 28px; }
.meta { color: #555; } code { font-size: 12px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 12px; }
th, td { border: 1px solid #d0d7de; padding: 3px 8px; text-align: right; white-space: nowrap; }
th { background: #f3f5f7; white-space: normal; } td.text, th.text { text-align: left; }
.plots { display: flex; flex-wrap: wrap; gap: 12px; }
figure.plot { margin: 0; border: 1px solid #e3e6e8; padding: 6px; }
figure.plot svg { width: 540px; height: auto; display: block; }
figcaption { font-size: 12px; color: #555; }
.sev-critical { color: #b42318; font-weight: 600; } .sev-warning { color: #b54708; }
.sev-info { color: #175cd3; } .missing { color: #777; font-style: italic; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def fmt(value: Any) -> str:
    """A compact, readable rendering of a table value."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)
        if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e4):
            return f"{value:.2e}"
        return f"{value:.4g}"
    if isinstance(value, str | int):
        return str(value)
    return format_value(value)


def _page(title: str, body: str) -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_STYLE}</style></head>\n"
            f"<body>\n{body}\n</body></html>\n")


class Link:
    """A table cell that links somewhere (``text`` is shown, escaped)."""

    def __init__(self, text: str, href: str) -> None:
        self.text, self.href = text, href


def _cell(value: Any) -> str:
    if isinstance(value, Link):
        return f"<a href=\"{_e(value.href)}\">{_e(value.text)}</a>"
    return _e(fmt(value))


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], text_columns: int = 1) -> str:
    head = "".join(f"<th class=\"{'text' if i < text_columns else ''}\">{_e(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(f"<td class=\"{'text' if i < text_columns else ''}\">{_cell(v)}</td>"
                         for i, v in enumerate(row)) + "</tr>\n"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>\n{body}</tbody></table>"


def _plots(items: Iterable[tuple[str, str, Callable[[], Figure]]]) -> str:
    parts, missing = [], []
    for name, caption, draw in items:
        try:
            svg = inline_svg(draw())
        except PlotUnavailable as exc:
            missing.append(f"<li><code>{_e(name)}</code>: {_e(exc)}</li>")
            continue
        parts.append(f"<figure class=\"plot\" id=\"plot-{_e(name)}\" data-plot=\"{_e(name)}\">"
                     f"{svg}<figcaption>{_e(caption)}</figcaption></figure>")
    out = f"<div class=\"plots\">{''.join(parts)}</div>"
    if missing:
        out += f"<p class=\"missing\">Not shown:</p><ul class=\"missing\">{''.join(missing)}</ul>"
    return out


def _findings(findings: Sequence[Mapping[str, Any]]) -> str:
    if not findings:
        return "<p>No findings.</p>"
    order = {"critical": 0, "warning": 1, "info": 2}
    items = []
    for f in sorted(findings, key=lambda f: order.get(str(f.get("severity")), 3)):
        sev = str(f.get("severity", "info"))
        items.append(
            f"<li><span class=\"sev-{_e(sev)}\">{_e(sev)}</span> <code>{_e(f.get('code'))}"
            f"</code>: {_e(f.get('message'))}<br><em>Suggestion:</em> {_e(f.get('suggestion'))}"
            "</li>"
        )
    return f"<ul class=\"findings\">{''.join(items)}</ul>"


PLOT_CAPTIONS = {
    "gradient_flow_heatmap": "log10 RMS of dL/dh, layer x probe step",
    "gains": "per-layer gradient gain at init and at the end",
    "loss": "training and validation loss",
    "interpolation": "loss on the straight line from the initial to the final weights",
    "alignment": "cosine(-gradient, direction to the final weights) during training",
}


def experiment_report(job: JobRecord) -> str:
    """The page of one experiment: status, summary, gradient flow, findings and plots."""
    result: Mapping[str, Any] = job.result or {}
    title = job.name or f"experiment {job.id}"
    summary = result.get("summary") or {}
    rows = [(key, summary.get(key)) for key in (
        "outcome", "steps", "planned_steps", "epochs", "final_train_loss", "final_val_loss",
        "final_train_accuracy", "final_val_accuracy", "wall_time_s", "device",
    ) if key in summary]
    probes = (result.get("gradient_flow") or {}).get("probes") or []
    flow = [(p.get("step"), p.get("end_to_end_ratio"), p.get("gain_geomean"), p.get("verdict"))
            for p in probes]
    parts = [
        f"<h1>{_e(title)}</h1>",
        f"<p class=\"meta\">Experiment <code>{_e(job.id)}</code> — status "
        f"<strong id=\"status\">{_e(job.status)}</strong>, attempts {job.attempts}, "
        f"created {_e(job.created_at.isoformat(timespec='seconds'))}"
        + (f", sweep <code>{_e(job.sweep_id)}</code>" if job.sweep_id else "") + "</p>",
    ]
    if job.error:
        parts.append(f"<p class=\"sev-warning\">{_e(job.error)}</p>")
    parts += ["<h2>Summary</h2>", _table(["field", "value"], rows)]
    if flow:
        parts += ["<h2>Gradient flow</h2>",
                  _table(["step", "end-to-end ratio", "gain (geo. mean)", "verdict"], flow, 0)]
    parts += ["<h2>Findings</h2>", _findings(result.get("findings") or []), "<h2>Plots</h2>"]
    parts.append(_plots(
        (name, PLOT_CAPTIONS[name], lambda draw=draw: draw(result))  # type: ignore[misc]
        for name, draw in EXPERIMENT_PLOTS.items()
    ))
    return _page(title, "\n".join(parts))


#: The table's headings, from the column list (``worker.core.sweeps.TABLE``).
TABLE_HEADERS = {c.name: c.header for c in TABLE}


def _job_link(job_id: str | None) -> Link | None:
    return Link(job_id[:8], f"/v1/experiments/{job_id}/report") if job_id else None


def sweep_report(
    *, sweep_id: str, name: str | None, varied: Sequence[str], rows: Sequence[Row],
    progress: Mapping[str, int], done: bool,
) -> str:
    """The page of a sweep: progress, the comparison table and metric-vs-axis plots."""
    title = name or f"sweep {sweep_id}"
    counts = ", ".join(f"{k} {v}" for k, v in progress.items() if v)
    columns = [*varied, *TABLE_HEADERS]
    headers = [*varied, *TABLE_HEADERS.values()]
    table_rows = [[_job_link(r.job_id) if c == "job_id" else r.get(c) for c in columns]
                  for r in rows]
    x = sweep_x_axis(rows, varied)
    parts = [
        f"<h1>{_e(title)}</h1>",
        f"<p class=\"meta\">Sweep <code>{_e(sweep_id)}</code> — {len(rows)} points; "
        f"<span id=\"progress\">{_e(counts)}</span>{'' if done else ' (still running)'}</p>",
        "<h2>Comparison</h2>",
        _table(headers, table_rows, text_columns=len(varied)),
        "<h2>Plots</h2>",
        _plots(
            (metric, f"{metric} vs {x}",
             lambda metric=metric: sweep_plot(metric, rows, varied, x))  # type: ignore[misc]
            for metric in METRICS
        ),
    ]
    return _page(title, "\n".join(parts))
