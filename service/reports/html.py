"""HTML reports: one self-contained page per experiment or sweep, plots inlined as SVG.

Every value that came from a client or a result is escaped. A plot whose data is missing
(e.g. interpolation under preset ``basic``) is left out with a note, never an error.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from matplotlib.figure import Figure

from service.reports.plots import EXPERIMENT_PLOTS, inline_svg, sweep_plot, sweep_x_axis
from service.schemas.remedies import RemediesPublic, RemedyOutcome
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
.sev-info { color: #175cd3; }
.headline { font-size: 16px; font-weight: 600; padding: 8px 12px; border-left: 4px solid; }
.missing { color: #777; font-style: italic; }
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


def _page(title: str, body: str, *, style: str = "") -> str:
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{_e(title)}</title><style>{_STYLE}{style}</style></head>\n"
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


def _finding_facts(f: Mapping[str, Any]) -> str:
    """What backs a finding: judged at init, seed agreement, benchmark precision."""
    facts = []
    if f.get("at_init"):
        facts.append("judged at initialization")
    agreement = f.get("seed_agreement") or {}
    if agreement.get("of"):
        facts.append(f"fired on {agreement.get('fired')} of {agreement.get('of')} seeds")
    precision = (f.get("calibration") or {}).get("precision") or {}
    shown = [f"{split} {value:.0%}" for split, value in precision.items()
             if isinstance(value, int | float)]
    if shown:
        facts.append("precision on the labeled benchmark: " + ", ".join(shown))
    return f"<br><span class=\"meta\">{_e('; '.join(facts))}</span>" if facts else ""


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
            f"{_finding_facts(f)}</li>"
        )
    return f"<ul class=\"findings\">{''.join(items)}</ul>"


PLOT_CAPTIONS = {
    "gradient_flow_heatmap": "log10 RMS of dL/dh, layer x probe step",
    "gains": "per-layer gradient gain at init and at the end (recurrent: RMS of dL/dh_t "
             "through time)",
    "loss": "training and validation loss",
    "interpolation": "loss on the straight line from the initial to the final weights",
    "alignment": "cosine(-gradient, direction to the final weights) during training",
}


def _resolved(fix: RemedyOutcome) -> str:
    if fix.resolved_all is None:
        return fix.status  # the twin has not succeeded (yet)
    if fix.resolved_all:
        return "yes" if fix.verified else "yes, but the loss did not go down"
    return "no: " + ", ".join(code for code, gone in fix.resolved.items() if not gone)


def _remedies(outcome: RemediesPublic, base: str = "") -> str:
    """Each fix's twin beside the original: resolved?, loss and gradient ratio before/after."""
    rows = [(fix.rank, fix.label, _resolved(fix), fix.final_val_loss.before,
             fix.final_val_loss.after, fix.loss_share.before, fix.loss_share.after,
             fix.grad_ratio_init.before, fix.grad_ratio_init.after, _job_link(fix.job_id, base))
            for fix in outcome.fixes]
    headers = ["#", "fix", "resolved?", "val loss before", "val loss after",
               "loss / baseline before", "loss / baseline after", "grad ratio @0 before",
               "grad ratio @0 after", "twin"]
    state = "" if outcome.status == "done" else " (twins still running)"
    return (f"<p class=\"meta\">Each fix run as a twin (same spec, data, seed and budget), best "
            f"first{_e(state)}; sweep <a href=\"{_e(base)}{_e(outcome.links.sweep_report)}\">"
            f"<code>{_e(outcome.sweep_id)}</code></a>.</p>\n"
            + _table(headers, rows, text_columns=3))


def spec_block(spec_json: str, limit: int = 20_000) -> str:
    """The normalized spec, pretty-printed (cut at ``limit`` characters: inline data)."""
    text = json.dumps(json.loads(spec_json), indent=2)
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit:,} more characters)"
    return f"<details><summary>normalized spec (JSON)</summary><pre id=\"spec\">" \
           f"{_e(text)}</pre></details>"


def _slope_rows(probes: Sequence[Mapping[str, Any]]) -> list[list[Any]]:
    chosen = probes if len(probes) <= 2 else [probes[0], probes[-1]]
    return [[p.get("step"), n.get("layer"), n.get("activation"), n.get("slope_coverage"),
             n.get("saturated_share"), n.get("dead_unit_share"), n.get("mean_sq_derivative")]
            for p in chosen for n in p.get("nonlinearities") or []]


def linearity_section(linearity: Mapping[str, Any]) -> str:
    """Slope (how much of each nonlinearity has slope, at init and at the end), local
    linearity by scale, the straight line from init to the end, the linearization gap."""
    parts = []
    if linearity.get("probes"):
        parts += [f"<h3>Slope (|φ′| ≥ {fmt(linearity.get('slope_threshold'))} max|φ′|)</h3>",
                  _table(["step", "layer", "activation", "slope coverage", "saturated",
                          "dead units", "E[φ′²]"], _slope_rows(linearity["probes"]), 3)]
    local = linearity.get("local_linearity") or {}
    if local.get("scales"):
        init, end = local.get("median_error_at_init") or [], local.get("median_error_at_end") or []
        rows = [[scale, init[i] if i < len(init) else None, end[i] if i < len(end) else None]
                for i, scale in enumerate(local["scales"])]
        parts += ["<h3>Local linearity (median relative error of f(x+d) ≈ f(x) + J d)</h3>",
                  _table(["relative scale", "at init", "at the end"], rows, 0)]
    mli = linearity.get("interpolation") or {}
    gap = linearity.get("linearization_gap") or {}
    names = {"monotone": "monotone", "largest_bump": "largest bump", "bump_alpha": "bump at alpha"}
    line = [(f"interpolation: {label}", mli[key]) for key, label in names.items() if key in mli]
    line += [(f"linearization {k}", v) for k, v in gap.items()]
    if line:
        parts += ["<h3>Init → end</h3>", _table(["quantity", "value"], line)]
    if not parts:
        return ""
    return "<h2 id=\"linearity\">Slope and linearity</h2>" + "\n".join(parts)


def _flow_section(flow_doc: Mapping[str, Any]) -> list[str]:
    """Gradient flow by layer, or, for a recurrent design, through time: an RNN's depth is its
    sequence, and the layer table alone (ratio ~1 across one recurrent layer) says nothing."""
    recurrent = flow_doc.get("recurrent") or []
    if recurrent:
        rows = [(r.get("step"), layer.get("layer"), layer.get("kind"), layer.get("steps"),
                 layer.get("per_step_gain"), layer.get("memory_horizon"),
                 layer.get("forget_gate_mean"), layer.get("verdict"))
                for r in recurrent for layer in r.get("layers") or []]
        return ["<h2 id=\"through-time\">Gradient through time</h2>",
                "<p class=\"meta\">Per recurrent layer: the per-step gain of dL/dh_t (geometric "
                "mean of rms[t] / rms[t+1]) and the memory horizon (steps back from the end "
                "before the gradient falls under 1% of its last value; empty: it reaches the "
                "whole sequence).</p>",
                _table(["step", "layer", "kind", "T", "per-step gain", "memory horizon",
                        "forget gate", "verdict"], rows, 3)]
    flow = [(p.get("step"), p.get("end_to_end_ratio"), p.get("gain_geomean"), p.get("verdict"))
            for p in flow_doc.get("probes") or []]
    if not flow:
        return []
    return ["<h2>Gradient flow</h2>",
            _table(["step", "end-to-end ratio", "gain (geo. mean)", "verdict"], flow, 0)]


def _verdict(result: Mapping[str, Any]) -> str:
    """The one-line headline, coloured by the worst finding."""
    text = result.get("headline")
    if not text:
        return ""
    order = ("critical", "warning")
    worst = next((sev for sev in order
                  if any(f.get("severity") == sev for f in result.get("findings") or [])), "info")
    return f"<p id=\"headline\" class=\"headline sev-{worst}\">{_e(text)}</p>"


def _cohort_note(result: Mapping[str, Any]) -> str:
    """How a sweep point trained, when it trained with others (``result.cohort``)."""
    cohort = result.get("cohort")
    if not isinstance(cohort, Mapping) or not isinstance(cohort.get("size"), int):
        return ""
    others = cohort["size"] - 1
    if others < 1:
        return f", trained alone, not with its sweep cohort: {_e(cohort.get('fallback'))}"
    how = ("as one batched model" if cohort.get("batched")
           else f"one after another ({cohort.get('fallback')})")
    return (f", trained with {others} other point{'s' if others != 1 else ''} of its sweep "
            f"{_e(how)}")


def experiment_report(
    job: JobRecord, remedies: RemediesPublic | None = None, *, base: str = ""
) -> str:
    """The page of one experiment, read top-down as a verdict: the headline, the findings
    (and how their fixes did, when ``remedies`` were run), the summary, plots, gradient flow
    (through time for recurrent designs), slope and linearity, and the spec last.
    ``base``: the service's absolute URL, so that links work in a page saved to disk."""
    result: Mapping[str, Any] = job.result or {}
    title = job.name or f"experiment {job.id}"
    summary = result.get("summary") or {}
    rows = [(key, summary.get(key)) for key in (
        "outcome", "steps", "planned_steps", "epochs", "final_train_loss", "final_val_loss",
        "baseline_val_loss", "final_train_accuracy", "final_val_accuracy", "wall_time_s",
        "device",
    ) if key in summary]
    parts = [
        f"<h1>{_e(title)}</h1>",
        f"<p class=\"meta\">Experiment <code>{_e(job.id)}</code> — status "
        f"<strong id=\"status\">{_e(job.status)}</strong>, attempts {job.attempts}, "
        f"created {_e(job.created_at.isoformat(timespec='seconds'))}"
        + (f", sweep <a href=\"{_e(base)}/v1/sweeps/{_e(job.sweep_id)}/report\"><code>"
           f"{_e(job.sweep_id)}</code></a>" if job.sweep_id else "")
        + _cohort_note(result)
        + f" — <a href=\"{_e(base)}/ui\">all runs</a></p>",
        _verdict(result),
    ]
    if job.error:
        parts.append(f"<p class=\"sev-warning\">{_e(job.error)}</p>")
    parts += ["<h2>Findings</h2>", _findings(result.get("findings") or [])]
    if remedies is not None:
        parts += ["<h2 id=\"remedies\">Remedies</h2>", _remedies(remedies, base)]
    parts += ["<h2>Summary</h2>", _table(["field", "value"], rows), "<h2>Plots</h2>"]
    parts.append(_plots(
        (name, PLOT_CAPTIONS[name], lambda draw=draw: draw(result))  # type: ignore[misc]
        for name, draw in EXPERIMENT_PLOTS.items()
    ))
    parts += _flow_section(result.get("gradient_flow") or {})
    parts.append(linearity_section(result.get("linearity") or {}))
    parts += ["<h2>Spec</h2>", spec_block(job.spec)]
    return _page(title, "\n".join(parts))


#: The table's headings, from the column list (``worker.core.sweeps.TABLE``).
TABLE_HEADERS = {c.name: c.header for c in TABLE}


def _job_link(job_id: str | None, base: str = "") -> Link | None:
    return Link(job_id[:8], f"{base}/v1/experiments/{job_id}/report") if job_id else None


def sweep_report(
    *, sweep_id: str, name: str | None, varied: Sequence[str], rows: Sequence[Row],
    progress: Mapping[str, int], done: bool, base: str = "",
) -> str:
    """The page of a sweep: progress, the comparison table and metric-vs-axis plots
    (``base``: the service's absolute URL, for links that work from disk)."""
    title = name or f"sweep {sweep_id}"
    counts = ", ".join(f"{k} {v}" for k, v in progress.items() if v)
    columns = [*varied, *TABLE_HEADERS]
    headers = [*varied, *TABLE_HEADERS.values()]
    table_rows = [[_job_link(r.job_id, base) if c == "job_id" else r.get(c) for c in columns]
                  for r in rows]
    x = sweep_x_axis(rows, varied)
    parts = [
        f"<h1>{_e(title)}</h1>",
        f"<p class=\"meta\">Sweep <code>{_e(sweep_id)}</code> — {len(rows)} points; "
        f"<span id=\"progress\">{_e(counts)}</span>{'' if done else ' (still running)'} — "
        f"<a href=\"{_e(base)}/ui?sweep={_e(sweep_id)}\">its runs</a></p>",
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
