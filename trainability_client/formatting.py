"""Plain-text output of the ``trainability`` commands: values, the sweep table, live progress."""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Sequence
from typing import Any, TextIO

from trainability_client.models import Experiment, Sweep, SweepRow


def fmt(value: Any) -> str:
    if value is None:
        return "-"
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
    return json.dumps(value, separators=(",", ":"))


#: (field, heading) of the table's metric columns: SweepRow's fields that have a heading.
TABLE_COLUMNS = tuple(SweepRow.table_columns())


def format_table(varied: Sequence[str], rows: Sequence[SweepRow]) -> str:
    """A plain-text table: the varied columns, then the metrics."""
    headers = [*varied, *(h for _, h in TABLE_COLUMNS)]
    cells = [[fmt(r.get(c)) for c in varied] + [fmt(r.get(c)) for c, _ in TABLE_COLUMNS]
             for r in rows]
    widths = [max(len(h), *(len(row[i]) for row in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if i < len(varied) else v.rjust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True))).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, cells)])


class ProgressLine:
    """Live progress on stderr: one redrawn ANSI line on a terminal, sparse lines otherwise."""

    def __init__(self, stream: TextIO | None = None, width: int = 24) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.width = width
        self._last_plain: tuple[str, int] | None = None
        self._last_time = 0.0

    def experiment(self, job: Experiment) -> None:
        p = job.progress or {}
        step, total = p.get("step"), p.get("total_steps")
        parts = [job.status]
        if isinstance(step, int) and isinstance(total, int) and total > 0:
            done = min(step / total, 1.0)
            filled = int(done * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            parts.append(f"[{bar}] {step}/{total}")
            if isinstance(p.get("train_loss"), int | float):
                parts.append(f"loss {p['train_loss']:.4g}")
            elapsed = p.get("elapsed_s")
            if isinstance(elapsed, int | float) and 0 < step < total:
                parts.append(f"ETA {elapsed * (total - step) / step:.0f}s")
        self._show(" ".join(parts), job.status, int(step or 0), job.is_final)

    def sweep(self, sweep: Sweep) -> None:
        final = sum(n for s, n in sweep.by_status.items() if s not in ("queued", "running"))
        filled = int(final / max(sweep.points, 1) * self.width)
        counts = ", ".join(f"{s} {n}" for s, n in sweep.by_status.items() if n)
        bar = "#" * filled + "-" * (self.width - filled)
        text = f"sweep [{bar}] {final}/{sweep.points} ({counts})"
        self._show(text, "", final, sweep.done)

    def _show(self, text: str, status: str, step: int, final: bool) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + text + ("\n" if final else ""))
            self.stream.flush()
            return
        now = time.monotonic()
        key = (status, step)
        if key != self._last_plain and (final or now - self._last_time >= 2.0
                                         or self._last_plain is None
                                         or self._last_plain[0] != status):
            print(text, file=self.stream, flush=True)
            self._last_plain, self._last_time = key, now
