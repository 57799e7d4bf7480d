"""A sweep cohort vs its points one after another, side by side in one run.

The points of a sweep that differ only in learning rate (``--axis lr``) or in seed (``--axis
seed``: each point its own data, from its seed) are trained two ways, end to end from the spec
as a worker's training process does (data, models, probes, training, results):
  sequential  ``run_experiment`` once per point (what each point's own job does alone),
  cohort      ``run_cohort`` once for all of them (what one worker does for a sweep cohort).
Both first run once, short and unmeasured; then they alternate, in a shuffled order, repeated.
The speed-up is sequential / cohort within each repeat (median and [min-max]). It also prints
the largest relative difference of a point's final train loss between the two ways.

Usage (CPU, one thread, the bench MLP of bench_batched_seeds.py; about 2 minutes):
  .venv/bin/python bench/bench_sweep_cohort.py --steps 300 --repeats 5 --threads 1
Smoke run: .venv/bin/python bench/bench_sweep_cohort.py --steps 10 --repeats 1
Options: [--k 8] [--axis lr|seed] [--family mlp|cnn|transformer] [--preset off]
[--device cpu] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_batched_seeds import make_spec  # noqa: E402
from bench.bench_training_overhead import _clock, _since, spread  # noqa: E402
from worker.compute.cohort import run_cohort  # noqa: E402
from worker.compute.pipeline import RunHooks, run_experiment  # noqa: E402
from worker.core.cohorts import cohort_key  # noqa: E402
from worker.core.spec import ExperimentSpec  # noqa: E402


def points(family: str, preset: str, steps: int, device: str, k: int, axis: str
           ) -> list[ExperimentSpec]:
    base = make_spec(family, preset, steps, 64, device)
    specs = []
    for i in range(k):
        if axis == "lr":
            opt = base.optimizer.model_copy(update={"lr": 0.002 * 2 ** (i / 2)})
            specs.append(base.model_copy(update={"optimizer": opt}))
        else:
            training = base.training.model_copy(update={"seed": i})
            specs.append(base.model_copy(update={"training": training}))
    assert len({cohort_key(s) for s in specs}) == 1, "the points must form one cohort"
    return specs


def sequential(specs: list[ExperimentSpec]) -> tuple[tuple[float, float], list[float]]:
    start = _clock()
    losses = [run_experiment(s)["summary"]["final_train_loss"] for s in specs]
    return _since(start), losses


def cohort(specs: list[ExperimentSpec]) -> tuple[tuple[float, float], list[float]]:
    results: dict[int, dict[str, Any]] = {}
    start = _clock()
    run_cohort(specs, [RunHooks() for _ in specs], results.__setitem__)
    took = _since(start)
    assert all(results[k]["cohort"]["batched"] for k in results)
    return took, [results[k]["summary"]["final_train_loss"] for k in range(len(specs))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--axis", choices=("lr", "seed"), default="lr")
    parser.add_argument("--family", choices=("mlp", "cnn", "transformer"), default="mlp")
    parser.add_argument("--preset", default="off")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warm = points(args.family, args.preset, 5, args.device, args.k, args.axis)
    sequential(warm)
    cohort(warm)
    specs = points(args.family, args.preset, args.steps, args.device, args.k, args.axis)
    ratios: list[float] = []
    cpu_ratios: list[float] = []
    seconds: dict[str, list[float]] = {"sequential": [], "cohort": []}
    worst = 0.0
    for _ in range(args.repeats):
        order = [sequential, cohort]
        random.shuffle(order)
        timed = {fn.__name__: fn(specs) for fn in order}
        (seq_t, seq_l), (coh_t, coh_l) = timed["sequential"], timed["cohort"]
        ratios.append(seq_t[0] / coh_t[0])
        cpu_ratios.append(seq_t[1] / coh_t[1])
        seconds["sequential"].append(seq_t[0])
        seconds["cohort"].append(coh_t[0])
        worst = max([worst, *(abs(a - b) / max(abs(a), 1e-12)
                              for a, b in zip(seq_l, coh_l, strict=True))])
    wall, cpu = spread(ratios), spread(cpu_ratios)
    print(f"{args.family}, K = {args.k} points over {args.axis}, {args.steps} steps, preset "
          f"{args.preset}, {args.device}, {torch.get_num_threads()} thread(s), "
          f"{args.repeats} repeats")
    for mode, values in seconds.items():
        print(f"  {mode:<10} median {spread(values)['median']:.2f} s")
    print(f"  speed-up (sequential / cohort): wall {wall['median']:.2f}x "
          f"[{wall['min']:.2f}-{wall['max']:.2f}], CPU {cpu['median']:.2f}x")
    print(f"  max relative difference of a point's final train loss: {worst:.1e}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                         "wall": wall, "cpu": cpu, "seconds": seconds,
                                         "max_rel_diff": worst}, indent=2))


if __name__ == "__main__":
    main()
