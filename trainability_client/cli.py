"""Client commands of the ``trainability`` CLI: submit, status, result, cancel, sweep, report.

They talk to a running service over HTTP (``--url`` / ``$TRAINABILITY_URL``, ``--api-key`` /
``$TRAINABILITY_API_KEY``) and import nothing of the server. Exit codes::

    0  ok                              4  service unavailable (503, or no connection)
    1  the experiment or a sweep       5  not authorized (401, 403)
       point failed / other error      6  --wait timed out
    2  usage or validation error (422)
    3  not found (404)

Progress goes to stderr (a live ANSI line on a terminal, plain lines otherwise); results go to
stdout, as JSON with ``--json``.

``main`` is the installed ``trainability`` command. Other installed parts add their commands
through the ``trainability.commands`` entry points (the server: ``api``, ``worker``, ``run``);
with only the client installed (``pip install 'trainability[client]'``) those commands print
one line naming the extra to install and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from trainability_client.client import Client
from trainability_client.errors import (
    EXIT_AUTH,
    EXIT_FAILED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    ConnectionFailed,
    Forbidden,
    NotFound,
    TrainabilityError,
    Unauthorized,
    Unavailable,
    ValidationFailed,
    WaitTimeout,
)
from trainability_client.formatting import (
    ProgressLine,
    fmt,
    format_table,
)
from trainability_client.models import Experiment
from trainability_client.server_commands import NotInstalled, add_installed_commands

CLIENT_COMMANDS = ("submit", "status", "result", "cancel", "sweep", "report", "remedies", "ls",
                   "export")


def err(message: str) -> None:
    print(f"trainability: {message}", file=sys.stderr, flush=True)


# --- commands ------------------------------------------------------------------------------

def _client(args: argparse.Namespace) -> Client:
    return Client(args.url, api_key=args.api_key, timeout=args.http_timeout)


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=False))


def _job_exit(job: Experiment) -> int:
    return EXIT_OK if job.status == "succeeded" else EXIT_FAILED


def _describe(job: Experiment) -> str:
    lines = [f"experiment {job.id}  {job.status}" + (f"  ({job.name})" if job.name else "")]
    if job.error:
        lines.append(f"  error: {job.error}")
    result = job.result or {}
    summary = result.get("summary") or {}
    if summary:
        lines.append(
            f"  outcome {summary.get('outcome')}, {summary.get('steps')} steps, "
            f"train loss {fmt(summary.get('final_train_loss'))}, "
            f"val loss {fmt(summary.get('final_val_loss'))}, "
            f"val accuracy {fmt(summary.get('final_val_accuracy'))}"
        )
    probes = (result.get("gradient_flow") or {}).get("probes") or []
    if probes:
        first, last = probes[0], probes[-1]
        lines.append(
            f"  gradient flow: end-to-end ratio {fmt(first.get('end_to_end_ratio'))} at step 0 "
            f"({first.get('verdict')}), {fmt(last.get('end_to_end_ratio'))} at step "
            f"{last.get('step')} ({last.get('verdict')})"
        )
    for finding in result.get("findings") or []:
        lines.append(f"  [{finding.get('severity')}] {finding.get('message')}")
    if not result and job.progress:
        p = job.progress
        lines.append(f"  step {p.get('step')}/{p.get('total_steps')}, "
                     f"loss {fmt(p.get('train_loss'))}")
    return "\n".join(lines)


def cmd_submit(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.submit(args.spec, idempotency_key=args.idempotency_key)
        if not args.json:
            err(f"submitted experiment {job.id}")
        if args.wait:
            bar = None if args.json else ProgressLine()
            job = client.wait(job.id, timeout=args.timeout,
                              on_progress=bar.experiment if bar else None)
        if args.json:
            _print_json(job.raw)
        else:
            print(_describe(job) if args.wait else job.id)
        return _job_exit(job) if args.wait else EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.get(args.id)
    if args.json:
        _print_json({k: v for k, v in job.raw.items() if k != "result"})
    else:
        print(_describe(job).splitlines()[0] + "".join(
            f"\n  step {job.progress.get('step')}/{job.progress.get('total_steps')}"
            for _ in [0] if job.progress))
    return EXIT_OK


def cmd_result(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.get(args.id)
    if args.json:
        if job.result is None:
            err(f"experiment {job.id} is {job.status} and has no result"
                + (f": {job.error}" if job.error else ""))
            return EXIT_FAILED
        _print_json(job.result)
    else:
        print(_describe(job))
    return _job_exit(job) if job.is_final else EXIT_FAILED


def cmd_cancel(args: argparse.Namespace) -> int:
    with _client(args) as client:
        job = client.cancel(args.id)
    print(f"experiment {job.id}  {job.status}")
    return EXIT_OK


def parse_value(text: str) -> Any:
    """An axis value: JSON when it parses (2, 0.5, true, null, "x"), else the plain string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_axis(text: str) -> tuple[str, list[Any]]:
    path, sep, values = text.partition("=")
    if not sep or not path or not values:
        raise argparse.ArgumentTypeError(f"--axis wants PATH=V1,V2,...; got {text!r}")
    return path.strip(), [parse_value(v.strip()) for v in values.split(",")]


def parse_variant(text: str) -> tuple[str, dict[str, Any]]:
    label, sep, settings = text.partition(":")
    if not sep or not label or not settings:
        raise argparse.ArgumentTypeError(
            f"--variant wants LABEL:PATH=V,PATH=V; got {text!r}")
    fields: dict[str, Any] = {}
    for item in settings.split(","):
        path, eq, value = item.partition("=")
        if not eq or not path:
            raise argparse.ArgumentTypeError(f"--variant setting {item!r} is not PATH=VALUE")
        fields[path.strip()] = parse_value(value.strip())
    return label.strip(), fields


def cmd_sweep(args: argparse.Namespace) -> int:
    axes = dict(args.axis or [])
    variants = dict(args.variant or []) or None
    with _client(args) as client:
        accepted = client.create_sweep(args.base, axes, variants=variants, mode=args.mode,
                                       name=args.name)
        if not args.json:
            together = sum(len(c) for c in accepted.cohorts)
            err(f"sweep {accepted.id}: {accepted.points} experiments queued"
                + (f" ({together} of them in {len(accepted.cohorts)} cohort"
                   f"{'s' if len(accepted.cohorts) != 1 else ''}, each trained as one batched "
                   "model)" if accepted.cohorts else ""))
        if args.wait:
            bar = None if args.json else ProgressLine()
            sweep = client.wait_sweep(accepted.id, timeout=args.timeout,
                                      on_progress=bar.sweep if bar else None,
                                      sort=args.sort, order=args.order)
        else:
            sweep = client.sweep(accepted.id, sort=args.sort, order=args.order)
    if args.json:
        _print_json(sweep.raw)
    else:
        print(f"sweep {sweep.id}" + (f"  ({sweep.name})" if sweep.name else ""))
        print(format_table(sweep.varied, sweep.table))
    failed = any(r.status in ("failed", "timed_out", "expired") for r in sweep.table)
    return EXIT_FAILED if args.wait and failed else EXIT_OK


def cmd_report(args: argparse.Namespace) -> int:
    with _client(args) as client:
        try:
            page = client.report(args.id)
        except NotFound:
            page = client.sweep_report(args.id)  # the id may be a sweep's
    if args.out:
        Path(args.out).write_text(page)
        err(f"report written to {args.out}")
    else:
        sys.stdout.write(page)
    return EXIT_OK


# --- wiring --------------------------------------------------------------------------------

def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=None,
                        help="service URL (default $TRAINABILITY_URL or http://127.0.0.1:8000)")
    common.add_argument("--api-key", default=None, help="API key (default $TRAINABILITY_API_KEY)")
    common.add_argument("--http-timeout", type=float, default=30.0, help=argparse.SUPPRESS)
    return common


def add_commands(sub: Any) -> None:
    """Add the client commands to an ``add_subparsers()`` object."""
    common = _common()

    p = sub.add_parser("submit", parents=[common], help="submit a spec (JSON file)")
    p.add_argument("spec", help="path to the spec JSON")
    p.add_argument("--wait", action="store_true", help="wait for the result, showing progress")
    p.add_argument("--json", action="store_true", help="print JSON on stdout (for scripts)")
    p.add_argument("--idempotency-key", default=None)
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to --wait")
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("status", parents=[common], help="an experiment's status and progress")
    p.add_argument("id")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("result", parents=[common], help="an experiment's result")
    p.add_argument("id")
    p.add_argument("--json", action="store_true", help="the whole result JSON")
    p.set_defaults(func=cmd_result)

    p = sub.add_parser("cancel", parents=[common], help="cancel an experiment")
    p.add_argument("id")
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("sweep", parents=[common], help="run a sweep over spec fields; print "
                       "the comparison table")
    p.add_argument("base", help="path to the base spec JSON")
    p.add_argument("--axis", action="append", type=parse_axis, metavar="PATH=V1,V2,...",
                   help="vary a spec field, e.g. model.depth=2,8,16 (repeatable)")
    p.add_argument("--variant", action="append", type=parse_variant,
                   metavar="LABEL:PATH=V,...",
                   help="a named bundle of settings, e.g. "
                   "'relu+res:model.activation=relu,model.residual=true' (repeatable)")
    p.add_argument("--mode", choices=("grid", "zip"), default="grid")
    p.add_argument("--name", default=None)
    p.add_argument("--wait", action="store_true", help="wait until every point has ended")
    p.add_argument("--sort", default="point", help="table column to sort by")
    p.add_argument("--order", choices=("asc", "desc"), default="asc")
    p.add_argument("--json", action="store_true")
    p.add_argument("--timeout", type=float, default=3600.0, help="seconds to --wait")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("report", parents=[common], help="HTML report of an experiment or sweep")
    p.add_argument("id")
    p.add_argument("--out", default=None, help="write to this file instead of stdout")
    p.set_defaults(func=cmd_report)
    from trainability_client import export_cli, list_cli, remedies_cli  # each imports this
    remedies_cli.add_remedies(sub, common)
    list_cli.add_ls(sub, common)
    export_cli.add_export(sub, common)


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run a client command; map errors to clear messages and exit codes."""
    try:
        return func(args)
    except ValidationFailed as exc:
        err(f"refused: {exc.detail or exc}")
        for e in exc.errors:
            where = e.get("field")
            point = f" (point {e['point']}: {fmt(e.get('values'))})" if "point" in e else ""
            err(f"  {where}: {e.get('msg')}{point}")
        return EXIT_USAGE
    except NotFound as exc:
        err(f"not found: {exc.detail or exc}")
        return EXIT_NOT_FOUND
    except ConnectionFailed as exc:
        err(f"unavailable: {exc}")
        return EXIT_UNAVAILABLE
    except Unavailable as exc:
        wait = f"; retry after {exc.retry_after:.0f} s" if exc.retry_after else ""
        err(f"unavailable: {exc.detail or exc}{wait}")
        return EXIT_UNAVAILABLE
    except (Unauthorized, Forbidden) as exc:
        err(f"not authorized: {exc.detail or exc} (set --api-key or TRAINABILITY_API_KEY)")
        return EXIT_AUTH
    except WaitTimeout as exc:
        err(str(exc))
        return EXIT_TIMEOUT
    except TrainabilityError as exc:
        err(str(exc))
        return EXIT_FAILED
    except (OSError, ValueError) as exc:  # a missing or malformed spec file
        err(f"cannot read input: {exc}")
        return EXIT_USAGE


def build_parser(*, installed: bool = True) -> argparse.ArgumentParser:
    """The ``trainability`` command line: with ``installed``, also the installed parts'."""
    parser = argparse.ArgumentParser(
        prog="trainability",
        description="Use a running trainability service (submit, status, result, cancel, sweep, "
        "report, ...); with the server installed, also run it (api, worker, run).",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    if installed:
        add_installed_commands(sub, skip=CLIENT_COMMANDS)
    add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """The ``trainability`` command (also ``python -m trainability_client.cli``)."""
    args_in = list(sys.argv[1:] if argv is None else argv)
    # A client command needs nothing else: leave the server unimported (about half a second).
    parser = build_parser(installed=not (args_in and args_in[0] in CLIENT_COMMANDS))
    args, unknown = parser.parse_known_args(args_in)
    if isinstance(args.func, NotInstalled):
        return args.func(args)  # whatever its arguments, `--help` included
    if unknown:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.command in CLIENT_COMMANDS:
        return run_command(args.func, args)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
