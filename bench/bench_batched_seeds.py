"""``training.seeds`` batched vs one seed after another, side by side in one run.

For each model family (an MLP of depth 4 and width 64, a small CNN, an LSTM, a pre-LN
transformer of 2 blocks, d = 32, on 16-token sequences), each K and each
diagnostics preset, it trains K seeds of the same design on the same data (made once, from seed
0) for the same number of steps three ways:
  plain       a hand-written PyTorch SGD+momentum loop, K times (the floor: no curves, no
              evaluations, no diagnostics),
  sequential  the project's single-seed path K times, one per seed: ``torch.manual_seed(k)``,
              ``build_model``, ``build_probes``, ``train``, ``member_result`` (what
              ``run_experiment`` does for a spec with ``training.seed = k``, without making the
              data again),
  batched     the project's multi-seed path once (``run_seeds`` for ``training.seeds =
              [0..K-1]``: one batched model where every layer has a batched form, else the
              members one after another; the table says which, and why).
Every combination first runs once, short and unmeasured. Then all runs are interleaved in a
shuffled order, repeated; the speed-up is sequential / batched within each repeat (median and
[min-max] of the per-repeat ratios). It also checks that each batched member ends with the loss
its sequential twin ends with: the same computation, batched, so equal up to float rounding
at first; training amplifies rounding differences (the CNN's grouped convolution: 0 after 10
steps, 1e-5 after 120, 1e-1 after 500 through its sharp drop in loss), so compare with a
short run before calling a large difference a bug. The target checked: K = 8 seeds of the MLP
batched >= 4x faster than sequential on one CPU thread.

Usage (the full measurement, CPU, one thread: about 4 minutes on a 2-core machine; then the
MLP with the default diagnostics, about 1 minute):
  .venv/bin/python bench/bench_batched_seeds.py --steps 300 --repeats 3 --threads 1 \
      --presets off --json bench/out/batched-seeds-cpu.json
  .venv/bin/python bench/bench_batched_seeds.py --families mlp --steps 300 --repeats 5 \
      --threads 1 --presets off,standard --json bench/out/batched-seeds-mlp-standard-cpu.json
On a GPU:
  .venv/bin/python bench/bench_batched_seeds.py --device cuda --k 8,64 --steps 500 \
      --repeats 3 --presets off --no-plain
Smoke run (under a minute):
  .venv/bin/python bench/bench_batched_seeds.py --steps 10 --repeats 1 --presets off
Options: [--families mlp,cnn,lstm,transformer] [--k 8] [--batch 64] [--target 4.0]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path
from typing import Any

import torch

if __package__ in (None, ""):  # run as a script: the repository root on the path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_training_overhead import (  # noqa: E402
    Timing,
    _clock,
    _since,
    _sync,
    plain_loop,
    spread,
)
from bench.raw_numbers import write_report  # noqa: E402
from worker.compute.data import Dataset, make_dataset
from worker.compute.evaluation import loss_function
from worker.compute.model import build_model
from worker.compute.results import build_probes, member_result
from worker.compute.seeds import run_seeds
from worker.compute.training import TrainHooks, train
from worker.core.spec import ExperimentSpec, analyze

TARGET = ("mlp", 8)  # family and K of the target
#: The designs: (model, data). Small on purpose: the dispatch-bound regime batching is for.
FAMILIES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "mlp": ({"family": "mlp", "depth": 4, "width": 64},
            {"kind": "teacher", "input_dim": 32, "output_dim": 10, "n_train": 8192}),
    "cnn": ({"family": "cnn", "depth": 4, "width": 16},  # 3x3 convs, 8x8 -> 4x4 -> 2x2
            {"kind": "digits", "layout": "image"}),
    "lstm": ({"family": "lstm", "depth": 1, "width": 32},
             {"kind": "adding", "length": 20, "n_train": 4096}),
    "transformer": ({"family": "transformer", "depth": 2, "width": 32, "heads": 4,
                     "mlp_ratio": 2},
                    {"kind": "markov_language", "vocab": 16, "order": 1, "length": 16,
                     "n_train": 4096}),
}


def make_spec(family: str, preset: str, steps: int, batch: int, device: str,
              seeds: list[int] | None = None, seed: int = 0) -> ExperimentSpec:
    model, data = FAMILIES[family]
    return ExperimentSpec.model_validate({
        "spec_version": 1,
        "model": model,
        "data": data,
        "optimizer": {"lr": 0.01, "momentum": 0.9},
        "training": {"steps": steps, "batch_size": batch, "device": device, "seed": seed,
                     "seeds": seeds},
        "diagnostics": {"preset": preset},
    })


def run_plain(spec: ExperimentSpec, data: Dataset, k: int) -> Timing:
    """K hand-written loops, one after another (models drawn outside the clock)."""
    device = data.x_train.device
    loss_fn = loss_function(data.shape)
    models = []
    for seed in range(k):
        torch.manual_seed(seed)
        models.append(build_model(spec).to(device))
    _sync(device)
    start = _clock()
    for seed, model in enumerate(models):
        plain_loop(spec, model, data, loss_fn, seed)
    return _since(start)


def run_sequential(spec: ExperimentSpec, data: Dataset, k: int) -> tuple[Timing, list[Any]]:
    """The single-seed path once per seed; the time and each seed's (outcome, final loss)."""
    device = data.x_train.device
    analysis = analyze(spec)
    loss_fn = loss_function(data.shape, spec.training.loss)
    ends = []
    _sync(device)
    start = _clock()
    for seed in range(k):
        began = time.perf_counter()
        one = spec.model_copy(
            update={"training": spec.training.model_copy(update={"seed": seed, "seeds": None})})
        torch.manual_seed(seed)
        model = build_model(one).to(device)
        probes = build_probes(one, model, data, loss_fn)
        run = train(one, model, data, probes)
        result = member_result(one, analysis, model, probes, run, data,
                               time.perf_counter() - began)
        ends.append((result["summary"]["outcome"], result["summary"]["final_train_loss"]))
    _sync(device)
    return _since(start), ends


def run_batched(spec: ExperimentSpec, data: Dataset, k: int) -> tuple[Timing, dict[str, Any]]:
    """``run_seeds`` for seeds [0..K-1]; the time and the result's ``seeds`` section."""
    multi = spec.model_copy(
        update={"training": spec.training.model_copy(update={"seeds": list(range(k))})})
    analysis = analyze(multi)
    _sync(data.x_train.device)
    start = _clock()
    result = run_seeds(multi, analysis, data, TrainHooks(), time.perf_counter())
    _sync(data.x_train.device)
    seeds: dict[str, Any] = result["seeds"]
    return _since(start), seeds


def per_repeat(runs: list[dict[str, Any]], key: tuple[str, int, str], num: str, den: str,
               clock: str) -> list[float]:
    """``num``'s time over ``den``'s for one (family, K, preset), each repeat on its own."""
    by_repeat: dict[int, dict[str, float]] = {}
    for r in runs:
        if (r["family"], r["k"], r["preset"]) == key:
            by_repeat.setdefault(r["repeat"], {})[r["mode"]] = r[clock]
    return [v[num] / v[den] for v in by_repeat.values() if num in v and den in v]


def loss_agreement(seq_ends: list[Any], batched: dict[str, Any]) -> dict[str, Any]:
    """Largest relative difference of a member's final train loss, batched vs sequential,
    and every outcome that was not ``completed``."""
    worst, odd = 0.0, []
    for seed, ((outcome, loss), run) in enumerate(zip(seq_ends, batched["runs"], strict=True)):
        for where, o in (("sequential", outcome), ("batched", run["outcome"])):
            if o != "completed":
                odd.append(f"seed {seed} {where}: {o}")
        if loss is not None and run["final_train_loss"] is not None:
            worst = max(worst, abs(run["final_train_loss"] - loss) / max(abs(loss), 1e-12))
    return {"max_rel_diff_final_train_loss": worst, "not_completed": odd}


def main() -> None:
    """Long: the bench as one script read top to bottom (per family and K: warm up, the three ways
    in shuffled repeats, agreement, the table); its steps are used nowhere else, and split up
    they would only pass the same dozen locals around."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--families", default="mlp,cnn,lstm,transformer")
    parser.add_argument("--k", default="8", help="seeds per job; a list: 8,64")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--presets", default="off")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (0: default)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-plain", action="store_true", help="skip the plain-loop floor")
    parser.add_argument("--target", type=float, default=4.0,
                        help="the speed-up K=8 MLP seeds batched must reach")
    parser.add_argument("--json", type=Path, default=None, help="write every raw number here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    families = args.families.split(",")
    unknown = set(families) - set(FAMILIES)
    if unknown:
        parser.error(f"unknown families {sorted(unknown)}; known: {sorted(FAMILIES)}")
    ks = [int(k) for k in args.k.split(",")]
    presets = args.presets.split(",")
    modes = ["sequential", "batched"] + ([] if args.no_plain else ["plain"])
    data = {f: make_dataset(make_spec(f, "off", 1, args.batch, args.device).data, 0, device)
            for f in families}
    specs = {(f, p): make_spec(f, p, args.steps, args.batch, args.device)
             for f in families for p in presets}

    # warm-up, unmeasured: kernels, allocator, each family's and preset's code paths
    for f in families:
        for p in presets:
            short = make_spec(f, p, min(args.steps, 10), args.batch, args.device)
            run_sequential(short, data[f], 2)
            run_batched(short, data[f], 2)
            if "plain" in modes:
                run_plain(short, data[f], 2)

    units = [(f, k, p, m) for f in families for k in ks for p in presets for m in modes]
    runs: list[dict[str, Any]] = []
    checks: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    seq_ends: dict[tuple[str, int, str, int], list[Any]] = {}
    batched_of: dict[tuple[str, int, str, int], dict[str, Any]] = {}
    order = random.Random(0)
    for repeat in range(args.repeats):
        shuffled = list(units)
        order.shuffle(shuffled)
        for position, (f, k, p, m) in enumerate(shuffled):
            spec, d = specs[(f, p)], data[f]
            extra: dict[str, Any] = {}
            if m == "plain":
                wall, cpu = run_plain(spec, d, k)
            elif m == "sequential":
                (wall, cpu), seq_ends[(f, k, p, repeat)] = run_sequential(spec, d, k)
            else:
                (wall, cpu), section = run_batched(spec, d, k)
                batched_of[(f, k, p, repeat)] = section
                extra = {"batched": section["batched"], "fallback": section["fallback"]}
            runs.append({"repeat": repeat, "position": position, "family": f, "k": k,
                         "preset": p, "mode": m, "wall": wall, "cpu": cpu, **extra})
            print(f"  repeat {repeat + 1}/{args.repeats} {f:<4} K={k:<3} {p:<8} {m:<10} "
                  f"{cpu:8.2f} s CPU {wall:8.2f} s wall", flush=True)
    for (f, k, p, repeat), ends in seq_ends.items():
        if (f, k, p, repeat) in batched_of:
            checks.setdefault((f, k, p), []).append(
                loss_agreement(ends, batched_of[(f, k, p, repeat)]))

    rows = []
    for f in families:
        for k in ks:
            for p in presets:
                key = (f, k, p)
                mine = [r for r in runs if (r["family"], r["k"], r["preset"]) == key]
                b = next(r for r in mine if r["mode"] == "batched")
                row: dict[str, Any] = {
                    "family": f, "k": k, "preset": p, "batched": b["batched"],
                    "fallback": b["fallback"],
                    "seconds": {m: {c: spread([r[c] for r in mine if r["mode"] == m])
                                    for c in ("cpu", "wall")} for m in modes},
                    "speedup": {c: spread(per_repeat(runs, key, "sequential", "batched", c))
                                for c in ("cpu", "wall")},
                    "agreement": {
                        "max_rel_diff_final_train_loss":
                            max(c["max_rel_diff_final_train_loss"] for c in checks[key]),
                        "not_completed": sorted({o for c in checks[key]
                                                 for o in c["not_completed"]}),
                    },
                }
                if "plain" in modes:
                    row["plain_over_batched"] = {
                        c: spread(per_repeat(runs, key, "plain", "batched", c))
                        for c in ("cpu", "wall")}
                rows.append(row)

    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"\n{args.steps} steps, batch {args.batch}, {args.repeats} repeats, {name}, torch "
          f"{torch.__version__}, {torch.get_num_threads()} thread(s); medians, speed-up = "
          "sequential / batched per repeat, median [min-max]")
    clock = "wall" if device.type == "cuda" else "cpu"
    head = (f"{'family':<6} {'K':>3} {'preset':<8} {'plain s':>8} {'seq s':>8} {'batched s':>9}"
            f"  {'speed-up (' + clock + ')':<24} {'plain/batched':<13} batched?")
    print(head)
    for row in rows:
        sec = row["seconds"]
        s = row["speedup"][clock]
        plain = f"{sec['plain'][clock]['median']:8.2f}" if "plain" in sec else f"{'-':>8}"
        pb = (f"{row['plain_over_batched'][clock]['median']:.2f}" if "plain_over_batched" in row
              else "-")
        how = "yes" if row["batched"] else f"NO, fell back: {row['fallback']}"
        print(f"{row['family']:<6} {row['k']:>3} {row['preset']:<8} {plain} "
              f"{sec['sequential'][clock]['median']:8.2f} {sec['batched'][clock]['median']:9.2f}"
              f"  {s['median']:6.2f}x [{s['min']:.2f}-{s['max']:.2f}]{'':<6} {pb:<13} {how}")
    print("check: each batched member's final train loss vs its sequential twin "
          "(largest relative difference: float rounding, amplified by training), and runs "
          "that did not complete")
    for row in rows:
        a = row["agreement"]
        print(f"  {row['family']:<6} K={row['k']:<3} {row['preset']:<8} "
              f"{a['max_rel_diff_final_train_loss']:.1e}  "
              f"{'; '.join(a['not_completed']) or 'all completed'}")
    verdicts = []
    for row in rows:
        if (row["family"], row["k"]) == TARGET:
            s = row["speedup"][clock]
            ok = ("met" if s["min"] >= args.target else
                  "met by the median" if s["median"] >= args.target else "NOT met")
            verdicts.append({"preset": row["preset"], "clock": clock, "limit": args.target,
                             "median": s["median"], "verdict": ok})
            print(f"target K=8 MLP batched >= {args.target:.1f}x sequential "
                  f"({row['preset']}, {clock}): {s['median']:.2f}x, {ok}")
    if args.json is not None:
        report = {
            "bench": "batched_seeds",
            "config": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
            "families": {f: {"model": FAMILIES[f][0], "data": FAMILIES[f][1]} for f in families},
            "device_name": name, "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(),
            "runs": runs, "rows": rows, "target": verdicts,
        }
        write_report(args.json, report)


if __name__ == "__main__":
    main()
