"""``trainability remedies ID [--wait]``: run each fix of an experiment's findings as a twin
and print the fixes ranked, each with its before -> after (the command's wiring is
``add_remedies`` in ``trainability_client/cli.py``'s ``add_commands``).

Exit codes are the CLI's: 0 ok, 1 a twin failed (with ``--wait``), 2 the experiment has no
fix to try or did not succeed (422), 3 not found, and the rest as for every client command.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from trainability_client.cli import _client, _print_json, err
from trainability_client.errors import EXIT_FAILED, EXIT_OK
from trainability_client.formatting import ProgressLine, fmt
from trainability_client.models import Remedies, RemedyFix, Sweep

HEADERS = ("rank", "fix", "resolved", "verified", "status", "val_loss", "loss/baseline",
           "grad@0", "job")
_LEFT = 5  # rank to status are text; the before -> after columns align right


def _change(before: Any, after: Any) -> str:
    return f"{fmt(before)} -> {fmt(after)}"


def _yes_no(value: bool | None) -> str:
    return "-" if value is None else "yes" if value else "no"


def _cells(fix: RemedyFix) -> list[str]:
    return [str(fix.rank), fix.label, _yes_no(fix.resolved_all), _yes_no(fix.verified),
            fix.status,
            _change(fix.val_loss_before, fix.val_loss_after),
            _change(fix.loss_share_before, fix.loss_share_after),
            _change(fix.grad_ratio_before, fix.grad_ratio_after),
            (fix.job_id or "-")[:8]]


def format_remedies(remedies: Remedies) -> str:
    """A heading, the original's numbers, and one line per fix, best first."""
    before = remedies.before
    lines = [
        f"remedies of experiment {remedies.job_id}: {len(remedies.fixes)} fix(es), "
        f"{remedies.status}  (sweep {remedies.sweep_id})",
        f"before: val loss {fmt(before.get('final_val_loss'))} "
        f"({fmt(before.get('loss_share'))} of the constant predictor's), "
        f"grad ratio @0 {fmt(before.get('grad_ratio_init'))}; findings: "
        + (", ".join(before.get("findings") or []) or "none"),
    ]
    rows = [_cells(fix) for fix in remedies.fixes]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(HEADERS)]

    def line(values: Sequence[str]) -> str:
        return "  ".join(v.ljust(w) if i < _LEFT else v.rjust(w)
                         for i, (v, w) in enumerate(zip(values, widths, strict=True))).rstrip()

    lines += [line(HEADERS), line(["-" * w for w in widths]), *map(line, rows)]
    notes = [f"  {fix.rank}. {fix.label}: " + (
        "still " + ", ".join(code for code, gone in fix.resolved.items() if gone is False)
        if fix.resolved_all is False else "its findings went away, but the loss did not go down")
        for fix in remedies.fixes if fix.verified is False]
    return "\n".join(lines + notes)


def _as_sweep(remedies: Remedies) -> Sweep:
    """The twins' progress in the shape the sweep progress line draws."""
    return Sweep(id=remedies.sweep_id, name=None, points=sum(remedies.by_status.values()),
                 varied=[], columns=[], by_status=remedies.by_status, done=remedies.done,
                 table=[], raw={})


def cmd_remedies(args: argparse.Namespace) -> int:
    with _client(args) as client:
        remedies = client.start_remedies(args.id, rerun=args.rerun)
        if not args.json:
            err(f"remedies of {args.id}: {len(remedies.fixes)} twin(s) in sweep "
                f"{remedies.sweep_id}")
        if args.wait:
            bar = None if args.json else ProgressLine()
            remedies = client.wait_remedies(
                args.id, timeout=args.timeout,
                on_progress=(lambda r: bar.sweep(_as_sweep(r))) if bar else None)
    if args.json:
        _print_json(remedies.raw)
    else:
        print(format_remedies(remedies))
    failed = any(f.status in ("failed", "timed_out", "expired") for f in remedies.fixes)
    return EXIT_FAILED if args.wait and failed else EXIT_OK


def add_remedies(sub: Any, common: argparse.ArgumentParser) -> None:
    """Add ``remedies`` to an ``add_subparsers()`` object."""
    p = sub.add_parser("remedies", parents=[common],
                       help="try each fix of an experiment's findings as a twin experiment; "
                       "print the fixes ranked, before -> after")
    p.add_argument("id", help="a finished (succeeded) experiment")
    p.add_argument("--wait", action="store_true", help="wait until every twin has ended")
    p.add_argument("--rerun", action="store_true", help="launch the twins again")
    p.add_argument("--json", action="store_true", help="print the outcome JSON on stdout")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to --wait")
    p.set_defaults(func=cmd_remedies)
