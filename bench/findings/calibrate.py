"""Calibrate every findings rule on the labeled benchmark's dev split; report both splits.

Usage: python bench/findings/calibrate.py [--results DIR] [--write]

Reads ``bench/findings/labels.json`` (labels from training outcomes, see README) and each
design's saved result (``bench/out/findings/results/<name>.json``, written by label.py), computes
every rule's feature (``worker/core/findings/features.py``: the very number the rule compares)
and picks each threshold on the **dev** split only:

- a threshold must raise no alarm on a healthy dev design; among those, the one that fires on
  the most faulty dev designs, placed halfway across the gap between the most extreme healthy
  value and the nearest faulty value beyond it (the maximum-margin place);
- a rule whose dev gap (nearest faulty minus most extreme healthy value) is under a quarter of
  the healthy values' spread does not separate them reliably: it stays an ``info``;
- a rule with its feature on fewer than 3 healthy dev designs, or beyond them on fewer than 2
  faulty ones, has no evidence for a boundary: it stays an ``info`` at its default;
- severity: ``critical`` when every dev design it fires on failed outright (final loss at least
  90% of the constant predictor's) and it fires on at least two; ``warning`` when it separates
  (fires on at least one faulty and no healthy dev design); ``info`` when it does not separate
  (a metric, not a warning).

The held-out split is never used to choose anything; its numbers are only reported. ``--write``
stores thresholds, severities and both splits' precision/recall in
``worker/core/findings/calibration.json``, which the rules read.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from score import print_report, score  # noqa: E402

from worker.core.findings import findings  # noqa: E402
from worker.core.findings.rules import RULES, Calibration, Rule, load_calibration  # noqa: E402
from worker.core.spec import ExperimentSpec  # noqa: E402

LABELS = ROOT / "bench" / "findings" / "labels.json"
RESULTS = ROOT / "bench" / "out" / "findings" / "results"
CALIBRATION = ROOT / "worker" / "core" / "findings" / "calibration.json"
FAILED_OUTRIGHT = 0.9
EDGE = 1e-6  # relative slack so the nearest faulty value itself still fires
#: A gap between the most extreme healthy and the nearest faulty dev value below this share of
#: the healthy values' spread is a boundary the next design crosses by chance: not a warning.
MIN_GAP_SD = 0.25  # final loss / constant-predictor loss at or above: did not train at all
#: Fewer dev designs than this on either side is no evidence for a boundary: a threshold set
#: halfway between one healthy and one faulty value moves with the next design. Such a rule
#: stays an ``info`` at its default (added after the attention batch, whose Post-LN rule rested
#: on one design a side, warned on shallow Post-LN runs that trained as well as Pre-LN).
MIN_HEALTHY_VALUES = 3  # healthy dev designs on which the rule's feature is defined
MIN_FAULTY_FIRED = 2  # faulty dev designs beyond every healthy one
SPLITS = ("dev", "heldout", "heldout2")


@dataclass
class Case:
    name: str
    split: str
    label: str  # healthy | faulty:<class>
    ratio: float
    result: dict[str, Any]
    spec: ExperimentSpec

    @property
    def faulty(self) -> bool:
        return self.label.startswith("faulty:")

    @property
    def pathology(self) -> str | None:
        return self.label.split(":", 1)[1] if self.faulty else None


def load_cases(results: Path) -> list[Case]:
    cases = []
    for entry in json.loads(LABELS.read_text())["cases"]:
        if entry["label"] == "ambiguous":
            continue
        path = results / f"{entry['name']}.json"
        if not path.exists():
            print(f"missing result for {entry['name']}; skipped", file=sys.stderr)
            continue
        doc = json.loads(path.read_text())
        result = doc.get("result", doc)
        spec = ExperimentSpec.model_validate(entry["spec"])
        ratio = entry.get("ratio")
        cases.append(Case(entry["name"], entry["split"], entry["label"],
                          math.inf if ratio is None else float(ratio), result, spec))
    return cases


def feature_values(rule: Rule, cases: list[Case]) -> list[tuple[Case, float]]:
    out = []
    for case in cases:
        score = rule.feature(case.result, case.spec)
        if score is not None and math.isfinite(score[0]):
            out.append((case, score[0]))
    return out


def choose(rule: Rule, dev: list[tuple[Case, float]]) -> tuple[float, str, str]:
    """Threshold, severity and how it was chosen, from dev values only."""
    bad_side = -1.0 if rule.direction == "below" else 1.0
    healthy = [v * bad_side for c, v in dev if not c.faulty]
    faulty = sorted(v * bad_side for c, v in dev if c.faulty)
    edge = max(healthy) if healthy else None  # the most extreme healthy value, bad side up
    beyond = [v for v in faulty if edge is None or v > edge]
    if not beyond:
        how = "no faulty dev design lies beyond every healthy one: kept as info at the default"
        return rule.default, "info", how
    if len(healthy) < MIN_HEALTHY_VALUES or len(beyond) < MIN_FAULTY_FIRED:
        how = (f"too little dev evidence ({len(healthy)} healthy designs with a value, "
               f"{len(beyond)} faulty beyond them; at least {MIN_HEALTHY_VALUES} and "
               f"{MIN_FAULTY_FIRED} needed): kept as info at the default")
        return rule.default, "info", how
    nearest = min(beyond)
    spread = statistics.pstdev(healthy) if len(healthy) > 1 else 0.0
    if edge is not None and nearest - edge < MIN_GAP_SD * spread:
        how = (f"the gap between healthy ({edge * bad_side:.4g}) and faulty "
               f"({nearest * bad_side:.4g}) dev values is {nearest - edge:.3g}, under "
               f"{MIN_GAP_SD} x the healthy spread ({spread:.3g}): info at the faulty edge")
        return (nearest - EDGE * max(abs(nearest), 1e-3)) * bad_side, "info", how
    # The maximum-margin place: halfway across the gap between the two classes' edges (the
    # gap itself was required to be wide above; no healthy value: just inside the faulty edge).
    if edge is None:
        threshold = nearest - EDGE * max(abs(nearest), 1e-3)
        how = "no healthy dev value: at the nearest faulty value"
    else:
        threshold = (edge + nearest) / 2
        how = (f"halfway between the most extreme healthy dev value ({edge * bad_side:.4g}) "
               f"and the nearest faulty one beyond it ({nearest * bad_side:.4g})")
    threshold *= bad_side
    fired = [c for c, v in dev if rule.fires(v, threshold)]
    outright = all(c.ratio >= FAILED_OUTRIGHT for c in fired)
    severity = "critical" if outright and len(fired) >= 2 else "warning"
    if rule.default_severity == "info":
        severity = "info"  # a trajectory metric: shown, never a warning on its own
    return threshold, severity, how


def calibrations(chosen: dict[str, tuple[float, str]], source: str,
                 severity: str | None = None) -> dict[str, Calibration]:
    """Calibration objects for ``findings()``; ``severity`` overrides every rule's (to score
    each rule as an alarm, whatever severity it ends up with)."""
    return {code: Calibration(t, severity or sev, True, source)
            for code, (t, sev) in chosen.items()}


def findings_of(cases: list[Case], cal: dict[str, Calibration],
                init_only: bool) -> dict[str, list[dict[str, Any]]]:
    return {c.name: findings(c.spec, c.result, init_only=init_only, calibration=cal)
            for c in cases}


def main() -> None:
    """Long: the bench as one script read top to bottom (read the dev results, fit each rule, print
    and optionally write the thresholds); its steps are used nowhere else, and split up they
    would only pass the same dozen locals around."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--write", action="store_true")
    parser.add_argument("--report", choices=("dev", "heldout", "heldout2", "all"),
                        nargs="+", default=["dev", "heldout"],
                        help="splits to print (heldout2 is reported once, at the end)")
    parser.add_argument("--rules", nargs="+", metavar="CODE",
                        help="choose only these rules' thresholds (the others stay as in "
                        "calibration.json, and --write changes only these entries): a new "
                        "batch of designs for new rules, e.g. the attention rules on cases3.py")
    parser.add_argument("--keep", nargs="+", metavar="CODE", default=[],
                        help="these rules keep their shipped threshold and severity; what they "
                        "score is refreshed (with --write): a rule the wider dev split would "
                        "demote for a reason the README gives")
    args = parser.parse_args()
    cases = load_cases(args.results)
    labels = [{"name": c.name, "split": c.split, "label": c.label} for c in cases]
    dev = [c for c in cases if c.split == "dev"]
    source = (f"bench/findings dev split ({len(dev)} labeled designs; labels from training "
              "outcomes); see bench/findings/README.md")
    chosen: dict[str, tuple[float, str]] = {}
    how: dict[str, str] = {}
    shipped = load_calibration()
    shipped_how = {code: entry.get("how", "") for code, entry in
                   json.loads(CALIBRATION.read_text()).get("rules", {}).items()}
    for rule in RULES:
        if rule.code in args.keep or (args.rules and rule.code not in args.rules):
            cal = shipped[rule.code]
            chosen[rule.code], how[rule.code] = (cal.threshold, cal.severity), "kept"
            if rule.code in args.keep:  # idempotent: kept twice reads as kept once
                prefix = "kept at the threshold chosen earlier: "
                how[rule.code] = prefix + shipped_how.get(rule.code, "").removeprefix(prefix)
            continue
        threshold, severity, how[rule.code] = choose(rule, feature_values(rule, dev))
        chosen[rule.code] = (threshold, severity)
    # every rule scored as an alarm (its precision as a threshold), then the real severities
    as_alarms = score(labels, findings_of(cases, calibrations(chosen, source, "warning"), False))
    reports = {
        "after_training": score(labels, findings_of(cases, calibrations(chosen, source), False)),
        "step0": score(labels, findings_of(cases, calibrations(chosen, source), True)),
    }
    splits = tuple(args.report)
    rules_out: dict[str, Any] = {}
    for rule in RULES:
        stats = {s: as_alarms["splits"][s]["codes"].get(rule.code, {}) for s in SPLITS}
        threshold, severity = chosen[rule.code]
        rules_out[rule.code] = {
            "threshold": round(threshold, 6), "severity": severity, "how": how[rule.code],
            "feature": rule.what,
            "precision": {s: stats[s].get("precision") for s in SPLITS},
            "recall": {s: stats[s].get("recall") for s in SPLITS},
            "firings": {s: stats[s].get("firings", 0) for s in SPLITS},
        }
        print(f"{rule.code:38s} {severity:8s} thr={threshold:9.4g}  " + "  ".join(
            f"{s}: fired {stats[s].get('firings', 0):2d} P={_r(stats[s].get('precision'))} "
            f"R={_r(stats[s].get('recall'))}" for s in splits))
    for key, report in reports.items():
        print(f"\n##### {key} #####")
        print_report(report, splits)
    benchmark = {k: {s: _summary(r["splits"][s]) for s in SPLITS} for k, r in reports.items()}
    if args.write and (args.rules or args.keep):
        doc = json.loads(CALIBRATION.read_text())
        for code in args.rules or [r.code for r in RULES if r.code not in args.keep]:
            doc["rules"][code] = {**rules_out[code], "source": source}
        for code in args.keep:  # its threshold's own source stays
            doc["rules"][code] = {**rules_out[code], "source": shipped[code].source}
        doc["source"] = source  # the dev split as it is now; kept rules name their own
        doc["benchmark"] = benchmark  # what the calibration as written scores, every split
        CALIBRATION.write_text(json.dumps(doc, indent=1) + "\n")
        written = [*(args.rules or ["every other rule"]), *(f"{c} (kept)" for c in args.keep)]
        print(f"wrote {', '.join(written)} to {CALIBRATION.relative_to(ROOT)}")
    elif args.write:
        doc = {"source": source, "rules": rules_out, "benchmark": benchmark}
        CALIBRATION.write_text(json.dumps(doc, indent=1) + "\n")
        print(f"wrote {CALIBRATION.relative_to(ROOT)}")


def _r(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def _summary(split: dict[str, Any]) -> dict[str, Any]:
    d, fa = split["detection"], split["false_alarms"]
    return {"designs": split["designs"], "faulty": d["faulty"], "detected": d["detected"],
            "healthy": fa["healthy"], "healthy_with_warning": fa["count"],
            "false_alarms": fa["designs"], "missed": d["missed"]}


if __name__ == "__main__":
    main()
