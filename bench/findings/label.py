"""Label the benchmark's designs from training outcomes alone (never from findings).

Every case and, for intended-faulty ones, its fixed twin is trained on the service. The
outcome measure is ``ratio = final_val_loss / baseline_val_loss``, the validation loss over
that of the best constant predictor (a diverged run or a missing loss is ratio = inf). It is
comparable across tasks and losses: 1 means nothing beyond the label/target frequencies was
learned. The thresholds were fixed before any number was seen:

- trains well  <=>  ratio <= 0.35 (it removed about two thirds of the trivial loss or more);
- clearly fails <=>  ratio >= 0.7 (it is within 30% of the constant predictor).

Labels: ``healthy`` if the design trains well; ``faulty:<class>`` if it clearly fails and its
one-change fix trains well on the same budget (so the failure is that class's and not the
task's); else ``ambiguous`` (kept with its numbers, left out of precision and recall). A design
meant to be healthy that fails has no fix twin to name its class, so it is ambiguous.

    python bench/findings/label.py --url http://127.0.0.1:8311 [--reuse] [--only REGEX]
    python bench/findings/label.py --url http://127.0.0.1:8312 --batch 2   # cases2.py only

``--only`` and ``--batch`` label a subset and merge it into the labels file: other entries are
kept as they are, and the run's time and count are appended to ``relabels`` (the top-level
``created``/``labeling_wall_s``/``runs_submitted`` stay those of the first full run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import re
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from cases import SPLITS, Case, all_cases, fixed_spec
from jobs import Record, load, normalized, run_specs, save

TRAINS_WELL = 0.35
CLEARLY_FAILS = 0.7
HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
LABELS = HERE / "labels.json"
RESULTS = REPO / "bench" / "out" / "findings" / "results"


def ratio(job: Record | None) -> float | None:
    """final_val_loss / baseline_val_loss; inf when diverged or the loss is missing; None when
    the job did not produce a result (failed, cancelled) or stopped early."""
    if job is None or job.get("status") != "succeeded" or not job.get("result"):
        return None
    summary = job["result"]["summary"]
    if summary["outcome"] in ("stopped", "timed_out"):
        return None
    final, baseline = summary.get("final_val_loss"), summary.get("baseline_val_loss")
    if summary["outcome"] == "diverged" or final is None or not math.isfinite(final):
        return math.inf
    if not baseline or baseline <= 0:
        return None
    return float(final / baseline)


def label_of(case: Case, r: float | None, fix_r: float | None) -> tuple[str, str]:
    """(label, reason) from the design's and its fixed twin's ratios."""
    if r is None:
        return "ambiguous", "the design's run produced no usable loss"
    if r <= TRAINS_WELL:
        why = "trains well" if case.intended == "healthy" else "trains well despite the fault"
        return "healthy", why
    if case.intended == "healthy":
        return "ambiguous", "meant to be healthy but does not train well (no fix names a class)"
    if r < CLEARLY_FAILS:
        return "ambiguous", "neither trains well nor clearly fails"
    if fix_r is None:
        return "ambiguous", "the fixed twin produced no usable loss"
    if fix_r > TRAINS_WELL:
        return "ambiguous", "clearly fails, but the fix does not train well either"
    return f"faulty:{case.intended}", "clearly fails and the one-change fix trains well"


def summary_numbers(job: Record | None, prefix: str = "") -> dict[str, Any]:
    summary = ((job or {}).get("result") or {}).get("summary") or {}
    return {
        f"{prefix}job_id": (job or {}).get("id"),
        f"{prefix}status": (job or {}).get("status"),
        f"{prefix}outcome": summary.get("outcome"),
        f"{prefix}final_val_loss": summary.get("final_val_loss"),
        f"{prefix}final_train_loss": summary.get("final_train_loss"),
        f"{prefix}baseline_val_loss": summary.get("baseline_val_loss"),
        f"{prefix}final_val_accuracy": summary.get("final_val_accuracy"),
        f"{prefix}wall_time_s": summary.get("wall_time_s"),
    }


def json_ratio(r: float | None) -> float | str | None:
    """JSON has no infinity: a diverged run's ratio is written as the string "inf"."""
    return "inf" if r is not None and math.isinf(r) else r


def fmt(r: float | None) -> str:
    return "  n/a" if r is None else f"{r:5.3f}" if math.isfinite(r) else "  inf"


def reusable(client: httpx.Client, spec: Record, path: Path) -> Record | None:
    """A saved succeeded job whose stored spec equals this spec as the service normalizes it."""
    saved = load(path)
    if saved is None or saved.get("status") != "succeeded":
        return None
    return saved if saved.get("spec") == normalized(client, spec) else None


def main(argv: list[str] | None = None) -> int:
    """Long: the bench as one script read top to bottom (per case: train it, train its one-change
    fix, label from the outcomes, write); its steps are used nowhere else, and split up they
    would only pass the same dozen locals around."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8311")
    parser.add_argument("--out", type=Path, default=LABELS, help="labels file to write")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where job JSONs go")
    parser.add_argument("--in-flight", type=int, default=6, help="jobs queued/running at once")
    parser.add_argument("--reuse", action="store_true",
                        help="skip runs whose saved result has the same (normalized) spec")
    parser.add_argument("--only", help="label only cases whose name matches this regex")
    parser.add_argument("--batch", type=int, choices=(1, 2, 3, 4),
                        help="label only the first batch (cases.py), the second (cases2.py), "
                        "the third (cases3.py: attention designs) or the fourth (cases3.py: "
                        "Post-LN over depth and learning rate)")
    args = parser.parse_args(argv)

    cases = [c for c in all_cases() if not args.only or re.search(args.only, c.name)]
    if args.batch:
        from cases2 import more_cases  # a sibling script
        from cases3 import attention_cases, post_ln_cases

        later = {2: {c.name for c in more_cases()}, 3: {c.name for c in attention_cases()},
                 4: {c.name for c in post_ln_cases()}}
        batch_of = {name: k for k, names in later.items() for name in names}
        cases = [c for c in cases if batch_of.get(c.name, 1) == args.batch]
    merging = bool(args.only or args.batch)
    specs: dict[str, Record] = {}
    for case in cases:
        specs[case.name] = case.spec
        twin = fixed_spec(case)
        if twin is not None:
            specs[twin["name"]] = twin
    jobs: dict[str, Record] = {}
    if args.reuse:
        with httpx.Client(base_url=args.url, timeout=60) as client:
            for key, spec in list(specs.items()):
                saved = reusable(client, spec, args.results / f"{key}.json")
                if saved is not None:
                    jobs[key] = saved
                    del specs[key]
        print(f"reusing {len(jobs)} saved result(s)", flush=True)

    started, total, finished = time.monotonic(), len(specs), [0]

    def done(key: str, job: Record) -> None:
        jobs[key] = job
        save(args.results / f"{key}.json", job)
        elapsed = time.monotonic() - started
        finished[0] += 1
        n = finished[0]
        wall = ((job.get("result") or {}).get("summary") or {}).get("wall_time_s") or 0.0
        print(f"[{n:3d}/{total}] {elapsed:6.0f}s  {job['status']:9s} ratio {fmt(ratio(job))}"
              f"  {wall:5.1f}s  {key}", flush=True)

    print(f"submitting {total} run(s) for {len(cases)} case(s) to {args.url}", flush=True)
    run_specs(args.url, specs, done, in_flight=args.in_flight)
    labeling_s = time.monotonic() - started

    previous_doc = (load(args.out) or {}) if merging else {}
    previous = {c["name"]: c for c in previous_doc.get("cases", [])}
    rows = []
    for case in cases:
        job, twin = jobs.get(case.name), jobs.get(f"{case.name}+fix")
        r, fix_r = ratio(job), (ratio(twin) if case.fix is not None else None)
        label, reason = label_of(case, r, fix_r)
        rows.append({
            "name": case.name, "split": case.split, "intended": case.intended,
            "label": label, "reason": reason,
            "ratio": json_ratio(r), "fix_ratio": json_ratio(fix_r),
            **summary_numbers(job), **summary_numbers(twin, "fix_"),
            "fix": case.fix, "spec": case.spec,
        })
        print(f"{case.split:8s} {label:32s} {fmt(r)} {fmt(fix_r)}  {case.name}")
    order = [c.name for c in all_cases()]
    merged = {**previous, **{row["name"]: row for row in rows}}
    rows = [merged[n] for n in order if n in merged]
    counts: dict[str, dict[str, int]] = {}
    for split in SPLITS:
        counts[split] = dict(sorted(Counter(r["label"] for r in rows if r["split"] == split)
                                    .items()))
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    document = {
        "about": "Labels from training outcomes only; see README.md and label.py.",
        "created": now,
        "service": args.url,
        "thresholds": {"trains_well_max_ratio": TRAINS_WELL,
                       "clearly_fails_min_ratio": CLEARLY_FAILS},
        "labeling_wall_s": round(labeling_s, 1),
        "runs_submitted": total,
        "counts": counts,
        "cases": rows,
    }
    if previous_doc:
        # A merge: the first full run's metadata stays; this run is appended to relabels.
        for key in ("created", "service", "labeling_wall_s", "runs_submitted"):
            if key in previous_doc:
                document[key] = previous_doc[key]
        run = {"created": now, "service": args.url, "only": args.only, "batch": args.batch,
               "cases": len(cases), "runs_submitted": total,
               "labeling_wall_s": round(labeling_s, 1)}
        document = {**{k: v for k, v in document.items() if k != "cases"},
                    "relabels": [*previous_doc.get("relabels", []), run], "cases": rows}
    args.out.write_text(json.dumps(document, indent=1, allow_nan=False) + "\n")
    print(json.dumps(counts, indent=1))
    kept = sum(r["label"] != "ambiguous" for r in rows)
    print(f"{kept} of {len(rows)} cases labeled (not ambiguous); {labeling_s:.0f} s; "
          f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
