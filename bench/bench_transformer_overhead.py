"""Diagnostics overhead on a small transformer, side by side in one run.

The transformer counterpart of ``bench_training_overhead.py`` (same method): trains the same
Pre-LN transformer on the same Markov-language token task and batch order several ways:
  plain     a hand-written PyTorch SGD+momentum loop (the floor),
  off       worker.compute.training.train with diagnostics off,
  basic / standard / full
            train with that preset (standard, the default, adds the attention diagnostics:
            block gradients, signal propagation, rank collapse, attention entropy).
Every configuration first runs once, short and unmeasured; then the runs are interleaved in a
shuffled order and repeated. Each run's time is divided by the plain loop's time of the same
repeat; the table gives the median of those per-repeat ratios with their spread (min-max,
interquartile range) in CPU and wall time, and the in-run share of training time spent in
diagnostics. The target checked: the default preset (standard) costs <= 1.10x the plain loop.

Usage (the full measurement, CPU, one thread: about 8 minutes on a 2-core machine, where a
600-step run takes ~30 s; --repeats 3 takes 5):
  .venv/bin/python bench/bench_transformer_overhead.py --steps 600 --repeats 5 --threads 1 \
      --presets off,standard --json bench/out/transformer-overhead-cpu.json
Smoke run (seconds):
  .venv/bin/python bench/bench_transformer_overhead.py --steps 30 --repeats 2 --threads 1
Options: [--depth 4] [--width 32] [--length 32] [--batch 64] [--device cpu|cuda]
  [--target 1.10]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_training_overhead import add_arguments, run_bench  # noqa: E402
from worker.core.spec import ExperimentSpec  # noqa: E402


def make_spec(args: argparse.Namespace, preset: str, steps: int | None = None) -> ExperimentSpec:
    return ExperimentSpec.model_validate({
        "spec_version": 1,
        "model": {"family": "transformer", "depth": args.depth, "width": args.width,
                  "heads": 4, "mlp_ratio": 2},
        "data": {"kind": "markov_language", "vocab": 16, "order": 1, "length": args.length,
                 "n_train": 4096},
        "optimizer": {"lr": 0.3, "momentum": 0.9},
        "training": {"steps": args.steps if steps is None else steps,
                     "batch_size": args.batch, "device": args.device},
        "diagnostics": {"preset": preset},
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--length", type=int, default=32)
    parser.add_argument("--batch", type=int, default=64)
    add_arguments(parser, steps=600, presets="off,basic,standard", target=1.10)
    args = parser.parse_args()
    run_bench(args, "transformer_overhead",
              f"Pre-LN transformer depth {args.depth} width {args.width}, length {args.length}, "
              f"batch {args.batch}", make_spec)


if __name__ == "__main__":
    main()
