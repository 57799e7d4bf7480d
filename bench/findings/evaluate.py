"""Evaluate the service's findings on the labeled designs: do they fire where training fails?

Submits every non-ambiguous design in ``labels.json`` (exactly the spec that was labeled),
collects ``result.findings`` and prints, per split and overall, detection of faulty designs,
false alarms on healthy ones (by name), each finding code's precision and recall, and the
labels x severity confusion table (``score.py``). Each job is saved so thresholds can be
studied offline; ``--from-results DIR`` scores saved jobs without running anything.

``--preflight`` sends the same spec with ``training.steps = 0`` (no ``epochs``): step-0
diagnostics and findings only, the cheap check a user would run before training. A service
that does not take ``steps: 0`` answers 422; that is reported and the exit status is 2.

    python bench/findings/evaluate.py --url http://127.0.0.1:8311 [--split dev] [--json OUT]
    python bench/findings/evaluate.py --url http://127.0.0.1:8311 --preflight
    python bench/findings/evaluate.py --url http://127.0.0.1:8311 --only '^attn-' --out DIR
    python bench/findings/evaluate.py --from-results bench/out/findings/eval
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
import time
from pathlib import Path
from typing import Any

from jobs import Record, SpecRefused, findings_of, load, run_specs, save
from score import SPLITS, print_report, score

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
EVAL = REPO / "bench" / "out" / "findings" / "eval"


def preflight(spec: Record) -> Record:
    """The same design, zero training steps: only the step-0 probes and findings."""
    out = copy.deepcopy(spec)
    training = out["training"]
    training.pop("epochs", None)
    training["steps"] = 0
    out["name"] = f"{spec['name']} (preflight)"
    return out


def collect(rows: list[dict[str, Any]], folder: Path) -> dict[str, list[Record]]:
    """Findings from saved jobs (or bare results) named ``<name>.json`` in ``folder``."""
    found = {}
    for row in rows:
        saved = load(folder / f"{row['name']}.json")
        findings = findings_of(saved) if saved is not None else None
        if findings is not None:
            found[row["name"]] = findings
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8311")
    parser.add_argument("--labels", type=Path, default=HERE / "labels.json")
    parser.add_argument("--split", choices=SPLITS, default="all")
    parser.add_argument("--preflight", action="store_true", help="run with training.steps = 0")
    parser.add_argument("--from-results", type=Path, metavar="DIR",
                        help="score saved <name>.json jobs or results; submit nothing")
    parser.add_argument("--out", type=Path, help="where to save jobs (default "
                        "bench/out/findings/eval, or eval/preflight with --preflight)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="write the report as JSON")
    parser.add_argument("--in-flight", type=int, default=6)
    parser.add_argument("--only", metavar="REGEX",
                        help="only designs whose name matches, e.g. '^attn-' (the attention batch)")
    args = parser.parse_args(argv)

    labels = json.loads(args.labels.read_text())["cases"]
    rows = [r for r in labels if r["label"] != "ambiguous"
            and (args.split == "all" or r["split"] == args.split)
            and (args.only is None or re.search(args.only, r["name"]))]
    if args.from_results:
        found = collect(rows, args.from_results)
        source = str(args.from_results)
    else:
        folder = args.out or (EVAL / "preflight" if args.preflight else EVAL)
        specs = {r["name"]: preflight(r["spec"]) if args.preflight else r["spec"] for r in rows}
        found, started = {}, time.monotonic()

        def done(name: str, job: Record) -> None:
            save(folder / f"{name}.json", job)
            findings = findings_of(job)
            if findings is not None:
                found[name] = findings
            alarms = sorted({f["code"] for f in findings or [] if f["severity"] != "info"})
            print(f"[{len(found):3d}/{len(specs)}] {time.monotonic() - started:6.0f}s "
                  f"{job['status']:9s} {name}: {', '.join(alarms) or '-'}", flush=True)

        print(f"submitting {len(specs)} labeled design(s)"
              f"{' as preflights (steps 0)' if args.preflight else ''} to {args.url}",
              flush=True)
        try:
            run_specs(args.url, specs, done, in_flight=args.in_flight)
        except SpecRefused as exc:
            if args.preflight and exc.status_code == 422:
                print(f"\nthe service refuses preflight specs (training.steps = 0): HTTP 422\n"
                      f"{exc.body[:2000]}\nit does not support preflight runs yet.",
                      file=sys.stderr)
                return 2
            raise
        source = f"{args.url}{' (preflight)' if args.preflight else ''}"
    report = score(rows, found)
    report["source"] = source
    print_report(report, SPLITS if args.split == "all" else (args.split,))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
