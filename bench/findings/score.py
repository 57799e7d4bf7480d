"""Score findings against the outcome labels: detection, false alarms, per-code precision/recall.

One function for every source of findings (fresh runs, preflight runs, saved results, or
findings recomputed offline), so numbers from different rule versions are comparable.
Only ``warning`` and ``critical`` findings count as an alarm: ``info`` is by definition not a
claim that the design trains badly.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from worker.core.findings import RULES

Finding = dict[str, Any]
Report = dict[str, Any]

# Which pathology class a finding code claims, from the rules themselves; () = none
# (precision only, no recall).
CODE_CLASSES: dict[str, tuple[str, ...]] = {
    rule.code: () if rule.pathology in ("none", "dead_units") else (rule.pathology,)
    for rule in RULES
}
ALARM = ("warning", "critical")
SPLITS = ("dev", "heldout", "heldout2", "all")


def _pct(k: int, n: int) -> float | None:
    return k / n if n else None


def _alarms(findings: list[Finding]) -> dict[str, str]:
    """code -> worst severity among its warning/critical findings."""
    worst: dict[str, str] = {}
    for f in findings:
        if f["severity"] in ALARM and worst.get(f["code"]) != "critical":
            worst[f["code"]] = f["severity"]
    return worst


def _score_split(rows: list[dict[str, Any]], found: dict[str, list[Finding]]) -> Report:
    """One split's report. Long: the report's sections (detection, per class, false alarms,
    per code) computed in the order the report prints them, from the same alarms."""
    faulty = [r for r in rows if r["label"].startswith("faulty:")]
    healthy = [r for r in rows if r["label"] == "healthy"]
    alarms = {r["name"]: _alarms(found[r["name"]]) for r in rows}
    cls = {r["name"]: r["label"].removeprefix("faulty:") for r in faulty}
    class_sizes = Counter(cls.values())

    detected = [r["name"] for r in faulty if alarms[r["name"]]]
    per_class = {
        c: {"detected": sum(1 for n, k in cls.items() if k == c and alarms[n]), "faulty": size}
        for c, size in sorted(class_sizes.items())
    }
    false_alarms = [
        {"name": r["name"], "codes": sorted(alarms[r["name"]])}
        for r in healthy if alarms[r["name"]]
    ]

    codes: dict[str, Any] = {}
    for code in sorted({c for a in alarms.values() for c in a} | set(CODE_CLASSES)):
        fired = [n for n, a in alarms.items() if code in a]
        on_faulty = [n for n in fired if n in cls]
        classes = CODE_CLASSES.get(code)
        entry: dict[str, Any] = {
            "firings": len(fired),
            "on_faulty": len(on_faulty),
            "on_healthy": len(fired) - len(on_faulty),
            "precision": _pct(len(on_faulty), len(fired)),
            "classes": list(classes) if classes is not None else None,
        }
        if classes:
            target = [n for n, k in cls.items() if k in classes]
            hits = [n for n in target if code in alarms[n]]
            on_class = [n for n in on_faulty if cls[n] in classes]
            entry |= {
                "class_precision": _pct(len(on_class), len(fired)),
                "class_faulty": len(target),
                "class_hits": len(hits),
                "recall": _pct(len(hits), len(target)),
                "missed": sorted(set(target) - set(hits)),
            }
        entry["fired_on_healthy"] = sorted(n for n in fired if n not in cls)
        codes[code] = entry

    confusion: dict[str, dict[str, int]] = {}
    for r in rows:
        a = alarms[r["name"]]
        worst = "critical" if "critical" in a.values() else "warning" if a else "no warning"
        confusion.setdefault(r["label"], {"no warning": 0, "warning": 0, "critical": 0})
        confusion[r["label"]][worst] += 1

    return {
        "designs": len(rows),
        "healthy": len(healthy),
        "faulty": len(faulty),
        "detection": {
            "detected": len(detected),
            "faulty": len(faulty),
            "rate": _pct(len(detected), len(faulty)),
            "missed": sorted({r["name"] for r in faulty} - set(detected)),
            "per_class": per_class,
        },
        "false_alarms": {
            "count": len(false_alarms),
            "healthy": len(healthy),
            "rate": _pct(len(false_alarms), len(healthy)),
            "designs": false_alarms,
        },
        "codes": codes,
        "confusion": dict(sorted(confusion.items())),
    }


def score(labels: list[dict[str, Any]], findings_by_name: dict[str, list[Finding]]) -> Report:
    """Score the findings of every labeled (non-ambiguous) design that has findings.

    ``labels``: rows with ``name``, ``split`` and ``label`` (``healthy``, ``faulty:<class>`` or
    ``ambiguous``); ``findings_by_name``: each design's findings (dicts with ``code`` and
    ``severity``). Designs without findings are listed under ``missing``, not scored.
    """
    rows = [r for r in labels if r["label"] != "ambiguous"]
    missing = sorted(r["name"] for r in rows if r["name"] not in findings_by_name)
    rows = [r for r in rows if r["name"] in findings_by_name]
    report: Report = {"missing": missing, "splits": {}}
    for split in SPLITS:
        chosen = [r for r in rows if split == "all" or r["split"] == split]
        report["splits"][split] = _score_split(chosen, findings_by_name)
    return report


def _f(x: float | None) -> str:
    return "   -" if x is None else f"{x:4.2f}"


def print_report(report: Report, splits: tuple[str, ...] = SPLITS) -> None:
    """The report as plain-text tables, one block per split."""
    if report["missing"]:
        print(f"not scored (no findings): {len(report['missing'])}: "
              + ", ".join(report["missing"]))
    for split in splits:
        s = report["splits"][split]
        if not s["designs"]:
            continue
        d, fa = s["detection"], s["false_alarms"]
        print(f"\n=== {split}: {s['designs']} designs ({s['healthy']} healthy, "
              f"{s['faulty']} faulty) ===")
        print(f"detection: {d['detected']}/{d['faulty']} faulty designs have a warning or "
              f"critical finding ({_f(d['rate'])})")
        for c, v in d["per_class"].items():
            print(f"  {c:24s} {v['detected']:3d}/{v['faulty']}")
        if d["missed"]:
            print("  missed: " + ", ".join(d["missed"]))
        print(f"false alarms: {fa['count']}/{fa['healthy']} healthy designs ({_f(fa['rate'])})")
        for item in fa["designs"]:
            print(f"  {item['name']}: {', '.join(item['codes'])}")
        print(f"\n{'code (warning+critical)':36s} {'fired':>5s} {'faulty':>6s} {'prec':>5s} "
              f"{'class-prec':>10s} {'recall':>11s}  class")
        for code, c in s["codes"].items():
            if not c["firings"] and not c.get("class_faulty"):
                continue
            recall = (f"{c['class_hits']}/{c['class_faulty']} {_f(c['recall'])}"
                      if c.get("classes") else "")
            target = "unmapped" if c["classes"] is None else ",".join(c["classes"]) or "(none)"
            print(f"{code:36s} {c['firings']:5d} {c['on_faulty']:6d} {_f(c['precision']):>5s} "
                  f"{_f(c.get('class_precision')):>10s} {recall:>11s}  {target}")
        print(f"\n{'label':34s} {'no warning':>10s} {'warning':>8s} {'critical':>8s}")
        for label, row in s["confusion"].items():
            print(f"{label:34s} {row['no warning']:10d} {row['warning']:8d} {row['critical']:8d}")
