"""Where the default diagnostics' time goes: each diagnostic's share of one run.

Runs the overhead bench's MLP (``bench_training_overhead.py``: depth 8, width 256, batch 128,
1000 steps, preset ``standard``, one CPU thread) twice (the first warms up) with a timer around
the shared capture and around each diagnostic's ``at_probe``, ``after_update`` and ``at_end``,
and prints each one's milliseconds and share of ``summary.diagnostics_time_s``, next to the
run's training time. The README's cost paragraph quotes it.

Usage (about 15 s): .venv/bin/python bench/profile_diagnostics.py [--steps 1000] [--preset
standard]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_training_overhead import make_spec  # noqa: E402
from worker.compute.diagnostics import probes  # noqa: E402
from worker.compute.diagnostics.capture import capture  # noqa: E402
from worker.compute.pipeline import run_experiment  # noqa: E402

HOOKS = ("at_probe", "after_update", "at_end")


def timed(fn: Callable[..., Any], label: str, spent: dict[str, float]) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            spent[label] = spent.get(label, 0.0) + time.perf_counter() - start
    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--preset", default="standard")
    args = parser.parse_args()
    torch.set_num_threads(1)
    spent: dict[str, float] = {}
    built = probes.ProbeSet.__post_init__

    def instrumented(self: probes.ProbeSet) -> None:
        built(self)
        for d in self.diagnostics:
            for hook in HOOKS:
                setattr(d, hook, timed(getattr(d, hook), f"{d.name}.{hook}", spent))

    probes.ProbeSet.__post_init__ = instrumented  # type: ignore[method-assign]
    # the capture as probes.py calls it (its module-level name)
    setattr(probes, "capture", timed(capture, "capture (shared)", spent))  # noqa: B010
    spec = make_spec(argparse.Namespace(depth=8, width=256, batch=128, device="cpu"),
                     args.preset, args.steps)
    for _ in range(2):
        spent.clear()
        summary = run_experiment(spec)["summary"]
    total = summary["diagnostics_time_s"]
    print(f"MLP 8 x 256, batch 128, {args.steps} steps, {args.preset}: training "
          f"{summary['train_time_s']:.2f} s, diagnostics {total * 1e3:.0f} ms "
          f"({total / summary['train_time_s']:.1%} of training)")
    for label, seconds in sorted(spent.items(), key=lambda kv: -kv[1]):
        if seconds >= 1e-4:
            print(f"  {label:<36} {seconds * 1e3:7.1f} ms  {seconds / total:5.1%}")


if __name__ == "__main__":
    main()
