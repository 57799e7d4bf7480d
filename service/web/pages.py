"""The web UI's pages, rendered on the server: the runs page and the compare page.

Plain HTML (no script, no build step), in the reports' style (``service/reports/html.py``),
plots inlined as SVG. Every link is absolute, made from the request's base URL, so a page
saved to disk still links to the service. Every value from a client or a result is escaped.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final
from urllib.parse import urlencode

from service.reports.html import (
    Link,
    _e,
    _findings,
    _page,
    _plots,
    _table,
)
from service.reports.plots import overlay_gradient_flow, overlay_loss
from worker.jobs.records import STATUSES, JobRecord, JobSummary

UI_STYLE: Final = """
nav { margin: 4px 0 14px; } nav a { margin-right: 14px; }
form.filters { margin: 8px 0; } form.filters label { margin-right: 12px; }
td.verdict { white-space: normal; min-width: 260px; max-width: 460px; text-align: left; }
.tag { background: #eef2f6; border-radius: 3px; padding: 0 4px; margin-right: 3px; }
.side { display: grid; gap: 14px; grid-template-columns: repeat(auto-fit, minmax(300px, 1fr)); }
.side section { border: 1px solid #e3e6e8; padding: 6px 10px; }
.side h3 { font-size: 15px; margin: 4px 0; } .headline { font-weight: 600; }
"""


def nav(base: str) -> str:
    return (f"<nav><a href=\"{_e(base)}/ui\">Runs</a>"
            f"<a href=\"{_e(base)}/docs\">API docs</a>"
            f"<a href=\"{_e(base)}/v1/sweeps\">Sweeps (JSON)</a></nav>")


def _tags(tags: Sequence[str]) -> str:
    return "".join(f"<span class=\"tag\">{_e(t)}</span>" for t in tags)


def _finding_cell(top: tuple[str, str] | None) -> str:
    if top is None:
        return "—"
    code, severity = top
    return f"<span class=\"sev-{_e(severity)}\">{_e(severity)}</span> <code>{_e(code)}</code>"


def _run_row(job: JobSummary, base: str) -> str:
    report = f"{base}/v1/experiments/{job.id}/report"
    sweep = (f"<a href=\"{_e(base)}/v1/sweeps/{_e(job.sweep_id)}/report\">"
             f"{_e(job.sweep_id[:8])}</a>" if job.sweep_id else "—")
    cells = [
        f"<input type=\"checkbox\" name=\"ids\" value=\"{_e(job.id)}\" "
        f"aria-label=\"compare {_e(job.id)}\">",
        _e(job.created_at.strftime("%Y-%m-%d %H:%M:%S")),
        f"<a href=\"{_e(report)}\">{_e(job.name or job.id[:8])}</a>",
        _e(job.status), _tags(job.tags), sweep,
        _e(job.headline) if job.headline else "—",
        _finding_cell(job.top_finding),
    ]
    classes = ["", "", "text", "text", "text", "text", "verdict", "text"]
    return (f"<tr data-id=\"{_e(job.id)}\">" + "".join(
        f"<td class=\"{c}\">{v}</td>" for c, v in zip(classes, cells, strict=True)) + "</tr>")


def _filters_form(base: str, status: str | None, tag: str | None) -> str:
    options = "".join(
        f"<option value=\"{s}\"{' selected' if s == status else ''}>{s}</option>"
        for s in ("", *STATUSES))
    return (f"<form class=\"filters\" method=\"get\" action=\"{_e(base)}/ui\">"
            f"<label>status <select name=\"status\">{options}</select></label>"
            f"<label>tag <input name=\"tag\" value=\"{_e(tag or '')}\" size=\"16\"></label>"
            "<button type=\"submit\">Filter</button></form>")


def runs_page(
    jobs: Sequence[JobSummary], *, base: str, status: str | None, tag: str | None,
    sweep: str | None, next_cursor: str | None,
) -> str:
    """Runs newest first, each with its verdict and headline finding; tick two or more and
    compare them."""
    headers = ["", "created (UTC)", "name", "status", "tags", "sweep", "verdict",
               "headline finding"]
    head = "".join(f"<th class=\"text\">{_e(h)}</th>" for h in headers)
    rows = "\n".join(_run_row(job, base) for job in jobs)
    table = (f"<table id=\"runs\"><thead><tr>{head}</tr></thead><tbody>\n{rows}\n"
             "</tbody></table>") if jobs else "<p id=\"runs\">No runs match.</p>"
    parts = [
        "<h1>Runs</h1>", nav(base), _filters_form(base, status, tag),
        f"<p class=\"meta\">{len(jobs)} run(s) on this page, newest first"
        + (f"; sweep <code>{_e(sweep)}</code>" if sweep else "") + ".</p>",
        f"<form method=\"get\" action=\"{_e(base)}/ui/compare\">{table}"
        "<p><button type=\"submit\">Compare selected</button></p></form>",
    ]
    if next_cursor:
        query = urlencode({k: v for k, v in (("status", status), ("tag", tag), ("sweep", sweep),
                                             ("cursor", next_cursor)) if v})
        parts.append(f"<p><a id=\"older\" href=\"{_e(base)}/ui?{_e(query)}\">Older runs</a></p>")
    return _page("trainability: runs", "\n".join(parts), style=UI_STYLE)


# --- compare -------------------------------------------------------------------------------

def labels_of(jobs: Sequence[JobRecord]) -> list[str]:
    """A short label per experiment: its name, with the id's start where names repeat."""
    names = [job.name or job.id[:8] for job in jobs]
    return [f"{n} ({job.id[:6]})" if names.count(n) > 1 else n
            for n, job in zip(names, jobs, strict=True)]


def _probe(result: Mapping[str, Any], index: int) -> Mapping[str, Any]:
    probes = (result.get("gradient_flow") or {}).get("probes") or []
    return probes[index] if probes else {}


#: The compare page's rows: (label, value read from the result).
KEY_NUMBERS: Final[tuple[tuple[str, Any], ...]] = (
    ("outcome", lambda r: (r.get("summary") or {}).get("outcome")),
    ("steps", lambda r: (r.get("summary") or {}).get("steps")),
    ("parameters", lambda r: (r.get("model") or {}).get("parameters")),
    ("final train loss", lambda r: (r.get("summary") or {}).get("final_train_loss")),
    ("final val loss", lambda r: (r.get("summary") or {}).get("final_val_loss")),
    ("final val accuracy", lambda r: (r.get("summary") or {}).get("final_val_accuracy")),
    ("grad ratio @0", lambda r: _probe(r, 0).get("end_to_end_ratio")),
    ("gain (geo. mean) @0", lambda r: _probe(r, 0).get("gain_geomean")),
    ("verdict @0", lambda r: _probe(r, 0).get("verdict")),
    ("grad ratio @end", lambda r: _probe(r, -1).get("end_to_end_ratio")),
)


def compare_page(jobs: Sequence[JobRecord], *, base: str) -> str:
    """Two or more experiments side by side: key numbers, the step-0 gradient flow and the loss
    curves overlaid, and each one's findings."""
    labels = labels_of(jobs)
    results = [job.result or {} for job in jobs]
    heads = [Link(label, f"{base}/v1/experiments/{job.id}/report")
             for label, job in zip(labels, jobs, strict=True)]
    rows: list[list[Any]] = [["report", *(Link("open", h.href) for h in heads)],
                             ["status", *(job.status for job in jobs)]]
    rows += [[name, *(read(r) for r in results)] for name, read in KEY_NUMBERS]
    table = _table(["", *labels], rows)
    runs = [(label, r) for label, r in zip(labels, results, strict=True) if r]
    sections = "".join(
        f"<section data-id=\"{_e(job.id)}\"><h3><a href=\"{_e(h.href)}\">{_e(h.text)}</a></h3>"
        f"<p class=\"headline\">{_e(r.get('headline') or f'no result ({job.status})')}</p>"
        f"{_findings(r.get('findings') or [])}</section>"
        for job, h, r in zip(jobs, heads, results, strict=True))
    parts = [
        f"<h1>Compare {len(jobs)} experiments</h1>", nav(base),
        "<h2>Key numbers</h2>", table,
        "<h2>Plots</h2>",
        _plots([
            ("gradient_flow_overlay", "RMS of dL/dh per layer at initialization",
             lambda: overlay_gradient_flow(runs)),
            ("loss_overlay", "training (line) and validation (dashed) loss",
             lambda: overlay_loss(runs)),
        ]),
        "<h2>Findings</h2>", f"<div class=\"side\">{sections}</div>",
    ]
    return _page(f"trainability: compare {', '.join(labels)}", "\n".join(parts),
                 style=UI_STYLE)
