"""One table of the GPU figures ``bench/gpu.sh`` measured, from the benches' JSON files.

Usage (gpu.sh runs it at the end):
  .venv/bin/python bench/gpu_summary.py bench/out/gpu-<stamp>
It reads what is there of overhead.json, transformer-overhead.json, batched-seeds.json,
batched-seeds-transformer.json, sweep-cohort.json and jobs-per-minute.json in that folder; a
missing file is a line saying so. Wall time throughout (on a GPU the process's CPU time is the
host's share, not the run's cost).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def load(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / name
    if not path.exists():
        print(f"  ({name}: not measured; see the log above)")
        return None
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def overhead(title: str, report: dict[str, Any]) -> None:
    rows = report["summary"]["wall"]
    target = report.get("target", {}).get("wall", {})
    print(f"{title} ({report['device_name']}, {report['config']['steps']} steps, "
          f"{report['config']['repeats']} repeats): time / plain loop, median [min-max]")
    for config, row in rows.items():
        s = row["over_plain"]
        print(f"  {config:<10} {row['seconds']['median']:8.3f} s   {s['median']:.3f}x "
              f"[{s['min']:.3f}-{s['max']:.3f}]")
    if target:
        print(f"  target standard <= {target['limit']:.2f}x: {target['verdict']}")


def batched(report: dict[str, Any]) -> None:
    cfg = report["config"]
    print(f"batched seeds ({report['device_name']}, {cfg['steps']} steps, {cfg['repeats']} "
          "repeats): sequential / batched, median [min-max]")
    for row in report["rows"]:
        sec, s = row["seconds"], row["speedup"]["wall"]
        how = "batched" if row["batched"] else f"fell back: {row['fallback']}"
        print(f"  {row['family']:<5} K={row['k']:<3} {row['preset']:<9} sequential "
              f"{sec['sequential']['wall']['median']:8.2f} s  batched "
              f"{sec['batched']['wall']['median']:7.2f} s  {s['median']:6.2f}x "
              f"[{s['min']:.2f}-{s['max']:.2f}]  {how}")


def cohort(report: dict[str, Any]) -> None:
    args, wall, sec = report["args"], report["wall"], report["seconds"]
    seq, coh = (sorted(sec[m])[len(sec[m]) // 2] for m in ("sequential", "cohort"))
    print(f"sweep cohort ({args['family']}, K = {args['k']} points over {args['axis']}, "
          f"{args['steps']} steps): one after another {seq:.2f} s, cohort {coh:.2f} s, "
          f"{wall['median']:.2f}x [{wall['min']:.2f}-{wall['max']:.2f}]; final losses agree "
          f"to {report['max_rel_diff']:.0e}")


def jobs(report: dict[str, Any]) -> None:
    spec = report["spec"]
    print(f"jobs per minute: {report['workers']} worker(s), one per GPU, {report['jobs']} jobs "
          f"of an MLP {spec['model'].get('depth')}x{spec['model'].get('width')}, "
          f"{spec['training'].get('steps')} steps: {report['jobs_per_minute']:.1f} jobs/min "
          f"(running {report['running_s']['median']:.2f} s per job, median), "
          f"statuses {report['statuses']}")


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    folder = Path(sys.argv[1])
    print(f"GPU figures in {folder}")
    if (r := load(folder, "overhead.json")) is not None:
        overhead("diagnostics overhead, MLP", r)
    if (r := load(folder, "transformer-overhead.json")) is not None:
        overhead("diagnostics overhead, transformer", r)
    for name in ("batched-seeds.json", "batched-seeds-transformer.json"):
        if (r := load(folder, name)) is not None:
            batched(r)
    if (r := load(folder, "sweep-cohort.json")) is not None:
        cohort(r)
    if (r := load(folder, "jobs-per-minute.json")) is not None:
        jobs(r)
    return 0


if __name__ == "__main__":
    sys.exit(main())
